"""The shared rate limiter: atomic in Redis, per-process when Redis is down."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.core.cache import caches

from scoreboard.ratelimit import ratelimit_hit, ratelimit_reset_local


def test_it_admits_exactly_the_limit_under_concurrency() -> None:
    key = uuid.uuid4().hex
    results: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(30)

    def hit() -> None:
        barrier.wait(timeout=10)
        decision = ratelimit_hit(scope="test", key=key, rate="10/m")
        with lock:
            results.append(decision.limited)
        caches["strict"].close()

    threads = [threading.Thread(target=hit) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert len(results) == 30
    assert results.count(False) == 10


def test_it_reads_without_counting() -> None:
    key = uuid.uuid4().hex
    ratelimit_hit(scope="test", key=key, rate="5/m")
    peek = ratelimit_hit(scope="test", key=key, rate="5/m", increment=False)
    assert peek.count == 1
    assert peek.remaining == 4
    assert not peek.degraded


def test_it_sets_headers_with_retry_after_when_limited() -> None:
    key = uuid.uuid4().hex
    for _ in range(3):
        decision = ratelimit_hit(scope="test", key=key, rate="2/m")
    assert decision.limited
    headers = decision.headers()
    assert headers["RateLimit-Limit"] == "2"
    assert headers["RateLimit-Remaining"] == "0"
    assert 1 <= int(headers["Retry-After"]) <= 60


def test_it_falls_back_to_a_per_process_limit_when_redis_is_down(settings) -> None:  # type: ignore[no-untyped-def]
    ratelimit_reset_local()
    settings.CACHES = {
        **settings.CACHES,
        "strict": {
            **settings.CACHES["strict"],
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
        },
    }
    key = uuid.uuid4().hex
    decisions = [ratelimit_hit(scope="test", key=key, rate="3/m") for _ in range(4)]
    assert all(d.degraded for d in decisions)
    assert [d.limited for d in decisions] == [False, False, False, True]


@pytest.mark.parametrize("rate", ["1/s", "100/h"])
def test_it_parses_rates(rate: str) -> None:
    decision = ratelimit_hit(scope="test", key=uuid.uuid4().hex, rate=rate)
    assert not decision.limited
