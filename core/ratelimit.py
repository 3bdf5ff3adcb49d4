"""Atomic rate limits in Redis, with a per-process fallback when Redis is down.

Counting is django-ratelimit's fixed-window counter (`cache.add` then `INCR`, atomic in
Redis) on the `strict` cache alias, which raises on Redis errors instead of hiding them.
`ratelimit_hit_many` counts several limits of one request (a completion's per-user and
per-IP limits) in one Redis round trip (or in the request's `redis_batch()`), on the
very keys and windows django-ratelimit uses, so both paths count the same hits.
When Redis fails, the same rate is enforced by a counter in this process's memory: the
service keeps accepting requests, at most `limit` per window per process (so the
effective limit is multiplied by the number of processes until Redis is back).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches
from django_ratelimit.core import (
    EXPIRATION_FUDGE,
    _get_window,
    _make_cache_key,
    _split_rate,
    get_usage,
)

from core.redis_batch import redis_later

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateDecision:
    limit: int
    count: int
    reset_seconds: int
    degraded: bool = False

    @property
    def limited(self) -> bool:
        return self.count > self.limit

    @property
    def remaining(self) -> int:
        return max(0, self.limit - self.count)

    def headers(self) -> dict[str, str]:
        """IETF draft RateLimit headers (and Retry-After when limited)."""
        headers = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_seconds),
        }
        if self.limited:
            headers["Retry-After"] = str(self.reset_seconds)
        return headers


class _LocalWindows:
    """Fixed-window counters in this process: the fallback while Redis is unreachable."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[int, int]] = {}

    def hit(self, key: str, period: int, increment: bool) -> tuple[int, int]:
        now = int(time.time())
        window = now - now % period + period
        with self._lock:
            if len(self._counts) > 100_000:  # bounded memory: drop expired windows
                self._counts = {k: v for k, v in self._counts.items() if v[0] > now}
            start, count = self._counts.get(key, (window, 0))
            if start != window:
                count = 0
            if increment:
                count += 1
            self._counts[key] = (window, count)
        return count, window - now


_local = _LocalWindows()


def ratelimit_hit(*, scope: str, key: str, rate: str, increment: bool = True) -> RateDecision:
    """Count one hit of `key` against `rate` (like "10/m") and say whether it is over.

    With `increment=False` only reads the current count (for "limit failures only").
    """
    limit, period = _split_rate(rate)
    try:
        usage = get_usage(
            None, group=scope, key=lambda _group, _request: key, rate=rate, increment=increment
        )
    except Exception:
        logger.warning("rate limit store unavailable; using per-process limit for %s", scope)
        count, reset = _local.hit(f"{scope}:{key}", period, increment)
        return RateDecision(limit=limit, count=count, reset_seconds=max(1, reset), degraded=True)
    if usage is None:  # rate limiting disabled by settings
        return RateDecision(limit=limit, count=0, reset_seconds=period)
    if usage["time_left"] < 0:  # the store answered but could not count
        logger.warning("rate limit store could not count; using per-process limit for %s", scope)
        count, reset = _local.hit(f"{scope}:{key}", period, increment)
        return RateDecision(limit=limit, count=count, reset_seconds=max(1, reset), degraded=True)
    return RateDecision(
        limit=limit, count=int(usage["count"]), reset_seconds=max(1, int(usage["time_left"]))
    )


def ratelimit_hit_many(hits: list[tuple[str, str, str]]) -> list[RateDecision]:
    """Count one hit against each (scope, key, rate), in one Redis round trip.

    Inside a `redis_batch()` block the hits go in the block's round trip, and the list
    returned is filled (in the order of `hits`) when the block ends. Off Redis (the
    embedded default) each limit is counted on its own, at once.
    """
    decisions: list[RateDecision] = []
    cache = caches[settings.RATELIMIT_USE_CACHE]
    if not getattr(settings, "RATELIMIT_ENABLE", True) or not hasattr(cache, "client"):
        decisions.extend(ratelimit_hit(scope=s, key=k, rate=r) for s, k, r in hits)
        return decisions
    plan = []
    for scope, key, rate in hits:
        limit, period = _split_rate(rate)
        window = _get_window(key, period)
        cache_key = cache.make_and_validate_key(_make_cache_key(scope, window, rate, key, None))
        plan.append((scope, key, limit, period, window, cache_key))

    def queue(pipe: Any) -> None:
        for _, _, _, period, _, cache_key in plan:
            pipe.set(cache_key, 0, ex=period + EXPIRATION_FUDGE, nx=True)
            pipe.incr(cache_key)

    def done(outcome: list[Any] | Exception) -> None:
        if isinstance(outcome, Exception) or any(isinstance(r, Exception) for r in outcome):
            logger.warning("rate limit store unavailable; using per-process limits")
            for scope, key, limit, period, _, _ in plan:
                count, reset = _local.hit(f"{scope}:{key}", period, True)
                decisions.append(
                    RateDecision(
                        limit=limit, count=count, reset_seconds=max(1, reset), degraded=True
                    )
                )
            return
        now = int(time.time())
        decisions.extend(
            RateDecision(limit=limit, count=int(count), reset_seconds=max(1, window - now))
            for (_, _, limit, _, window, _), count in zip(plan, outcome[1::2], strict=True)
        )

    redis_later(queue, done)
    return decisions


def ratelimit_reset_local() -> None:
    """Forget the per-process fallback counters (tests, and after Redis returns)."""
    _local._counts.clear()


assert getattr(settings, "RATELIMIT_USE_CACHE", "strict") == "strict"  # noqa: S101
