"""Atomic rate limits in Redis, with a per-process fallback when Redis is down.

A fixed-window counter per (scope, key, rate, window) on the `strict` cache alias, which
raises on Redis errors instead of hiding them: `SET NX EX` then `INCR`, atomic in Redis.
`ratelimit_hit_many` counts several limits of one request (a completion's per-user and
per-IP limits) in one Redis round trip (or in the request's `redis_batch()`), on the
same keys and windows as `ratelimit_hit`, so both paths count the same hits. The
counter is written here rather than taken from a rate-limit library because the
completion path must send its counts inside a round trip shared with other work, which
no library's public API offers; the whole of it is the two commands above.
When Redis fails, the same rate is enforced by a counter in this process's memory: the
service keeps accepting requests, at most `limit` per window per process (so the
effective limit is multiplied by the number of processes until Redis is back).
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import caches

from core.redis_batch import redis_later

logger = logging.getLogger(__name__)

# Seconds a counter outlives its window, so a slow clock never sees a fresh counter early.
EXPIRATION_FUDGE = 5
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])\s*$")


def parse_rate(rate: str) -> tuple[int, int]:
    """("10/m" -> (10, 60)): a count per period, the period as N and a unit of s, m, h, d
    ("100/5m" is 100 per 300 s). Raises ValueError for anything else."""
    match = _RATE.match(rate)
    if match is None:
        raise ValueError(f"not a rate: {rate!r} (expected like '10/m' or '100/5m')")
    count, multiple, unit = match.groups()
    period = int(multiple or 1) * _PERIODS[unit]
    if period <= 0:
        raise ValueError(f"not a rate: {rate!r} (the period must be positive)")
    return int(count), period


def _window_end(key: str, period: int, now: int) -> int:
    """The end of the fixed window holding `now`; windows of different keys are offset
    (by a hash of the key) so that they don't all reset at one instant."""
    offset = int(hashlib.blake2b(key.encode(), digest_size=4).hexdigest(), 16) % period
    return now - ((now - offset) % period) + period


def _counter_key(scope: str, key: str, rate: str, window_end: int) -> str:
    digest = hashlib.blake2b(f"{scope}:{key}".encode(), digest_size=16).hexdigest()
    return f"rl:{scope}:{rate}:{window_end}:{digest}"


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
    limit, period = parse_rate(rate)
    if not getattr(settings, "RATELIMIT_ENABLE", True):
        return RateDecision(limit=limit, count=0, reset_seconds=period)
    now = int(time.time())
    window = _window_end(key, period, now)
    cache = caches[settings.RATELIMIT_USE_CACHE]
    cache_key = _counter_key(scope, key, rate, window)
    try:
        cache.add(cache_key, 0, timeout=period + EXPIRATION_FUDGE)
        count = cache.incr(cache_key) if increment else cache.get(cache_key, 0)
    except Exception:
        logger.warning("rate limit store unavailable; using per-process limit for %s", scope)
        count, reset = _local.hit(f"{scope}:{key}", period, increment)
        return RateDecision(limit=limit, count=count, reset_seconds=max(1, reset), degraded=True)
    return RateDecision(limit=limit, count=int(count), reset_seconds=max(1, window - now))


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
    now = int(time.time())
    for scope, key, rate in hits:
        limit, period = parse_rate(rate)
        window = _window_end(key, period, now)
        cache_key = cache.make_and_validate_key(_counter_key(scope, key, rate, window))
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
