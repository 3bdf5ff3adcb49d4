"""The shared rate limiter: atomic in Redis, per-process when Redis is down."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.core.cache import caches

from core.ratelimit import ratelimit_hit, ratelimit_reset_local


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


def test_it_counts_several_limits_in_one_round_trip_on_the_same_counters(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import redis

    from core.ratelimit import ratelimit_hit_many

    user, ip = uuid.uuid4().hex, uuid.uuid4().hex
    sent: list[int] = []
    execute = redis.client.Pipeline.execute

    def counting(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        sent.append(len(self.command_stack))
        return execute(self, *args, **kwargs)

    monkeypatch.setattr(redis.client.Pipeline, "execute", counting)
    for expected in (1, 2, 3):
        per_user, per_ip = ratelimit_hit_many([("u", user, "2/m"), ("i", ip, "10/m")])
        assert (per_user.count, per_ip.count) == (expected, expected)
    assert sent == [4, 4, 4]  # one pipeline a call, two commands a limit
    assert per_user.limited
    assert not per_ip.limited
    # django-ratelimit's own path reads the very same counter.
    assert ratelimit_hit(scope="u", key=user, rate="2/m", increment=False).count == 3


def test_it_admits_exactly_the_limit_when_batched_under_concurrency() -> None:
    from core.ratelimit import ratelimit_hit_many

    key = uuid.uuid4().hex
    admitted: list[bool] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def hit() -> None:
        barrier.wait(timeout=10)
        (decision,) = ratelimit_hit_many([("batch", key, "7/m")])
        with lock:
            admitted.append(not decision.limited)
        caches["strict"].close()

    threads = [threading.Thread(target=hit) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert admitted.count(True) == 7
    assert len(admitted) == 20


def test_it_falls_back_per_process_when_batched_and_redis_is_down(redis_down) -> None:  # type: ignore[no-untyped-def]
    from core.ratelimit import ratelimit_hit_many

    key = uuid.uuid4().hex
    decisions = [ratelimit_hit_many([("down", key, "2/m")])[0] for _ in range(3)]
    assert all(d.degraded for d in decisions)
    assert [d.limited for d in decisions] == [False, False, True]


@pytest.mark.parametrize(
    ("rate", "parsed"),
    [
        ("10/m", (10, 60)),
        ("300/m", (300, 60)),
        ("1/s", (1, 1)),
        ("100/5m", (100, 300)),
        ("5 / h", (5, 3600)),
        ("2/d", (2, 86400)),
    ],
)
def test_it_parses_a_rate_into_count_and_period(rate: str, parsed: tuple[int, int]) -> None:
    from core.ratelimit import parse_rate

    assert parse_rate(rate) == parsed


@pytest.mark.parametrize("rate", ["", "10", "10/x", "ten/m", "10/0m", "-1/m", "10/m/s"])
def test_it_refuses_a_rate_it_cannot_read(rate: str) -> None:
    from core.ratelimit import parse_rate

    with pytest.raises(ValueError, match="not a rate"):
        parse_rate(rate)
