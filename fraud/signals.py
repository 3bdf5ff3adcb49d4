"""The fraud rules' memory: recent completions per user and recent accounts per address.

Kept in Redis (on the embedded default, in the local cache), never in SQL, so that
assessing a completion costs at most two Redis round trips: `read` (one pipeline: the
user's recent completions, and this account counted on its address) before the decision,
and `remember` (one pipeline) after it. Everything here is derived and expires; losing it
only makes the rules forget.

Keys, under `<REDIS_KEY_PREFIX>:fraud:`:
  u:<user id>   list    the user's last FRAUD_HISTORY_SIZE completions, newest first,
                        each "time|action|ip prefix|device|delta|place" (place:
                        "lat;lon;accuracy radius;country;city", or empty)
  ip:<address>  zset    user id -> time of their last completion from this address
  s:<user id>   string  the user's score after their last accepted completion (read by
                        the score-jump rule instead of the user's row)
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import uuid
from typing import Any

from django.conf import settings
from django.core.cache import caches

from core.redis_client import redis_strict
from fraud.geo import Place
from fraud.rules import PastCompletion

_HISTORY_TTL = 86400


def ip_prefix(ip: str | None) -> str:
    """The network a client is on: its /24 (IPv4) or /48 (IPv6)."""
    if not ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return "unknown"
    bits = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{bits}", strict=False))


def device_of(user_agent: str) -> str:
    """A short, stable fingerprint of the user agent (the raw string is not kept here)."""
    return hashlib.blake2b(user_agent.encode(), digest_size=6).hexdigest()


def _encode(past: PastCompletion) -> str:
    place = past.place.encode() if past.place is not None else ""
    return f"{past.at:.3f}|{past.action_id}|{past.ip_prefix}|{past.device}|{past.delta}|{place}"


def _decode(raw: bytes | str) -> PastCompletion | None:
    text = raw.decode() if isinstance(raw, bytes) else raw
    parts = text.split("|")
    if len(parts) not in (5, 6):  # 5: written before completions had a place
        return None
    place = Place.decode(parts[5]) if len(parts) == 6 and parts[5] else None
    try:
        return PastCompletion(float(parts[0]), parts[1], parts[2], parts[3], int(parts[4]), place)
    except ValueError:
        return None


def _int_or_none(raw: bytes | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


class RedisSignalStore:
    """The signal store on the `strict` Redis alias: every call raises on Redis errors."""

    def __init__(self) -> None:
        self.base = f"{settings.REDIS_KEY_PREFIX}:fraud"

    @property
    def client(self) -> Any:
        return redis_strict()

    def read(
        self, *, user_id: uuid.UUID, ip: str | None, now: float
    ) -> tuple[list[PastCompletion], int, int | None]:
        """(the user's recent completions, newest first; accounts seen on this address in
        the farm window, this one included; the user's last known score, or None). One
        round trip; counts this account on the address as it reads."""
        pipe = self.client.pipeline(transaction=False)
        self.read_queue(pipe, user_id=user_id, ip=ip, now=now)
        return self.read_replies(pipe.execute())

    def read_queue(self, pipe: Any, *, user_id: uuid.UUID, ip: str | None, now: float) -> None:
        """`read`'s commands, added to the caller's pipeline (`read_replies` reads theirs)."""
        window = settings.FRAUD_FARM_WINDOW_SECONDS
        ip_key = f"{self.base}:ip:{ip or 'unknown'}"
        pipe.lrange(f"{self.base}:u:{user_id}", 0, settings.FRAUD_HISTORY_SIZE - 1)
        pipe.zadd(ip_key, {str(user_id): now})
        pipe.zremrangebyscore(ip_key, "-inf", now - window)
        pipe.zcard(ip_key)
        pipe.expire(ip_key, int(window) + 1)
        pipe.get(f"{self.base}:s:{user_id}")

    @staticmethod
    def read_replies(replies: list[Any]) -> tuple[list[PastCompletion], int, int | None]:
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        raw, _, _, accounts, _, score = replies
        history = [past for past in map(_decode, raw) if past is not None]
        return history, int(accounts), _int_or_none(score)

    def remember(
        self, *, user_id: uuid.UUID, past: PastCompletion, score: int | None = None
    ) -> None:
        """Add a completion (and the score it left, if accepted) to the user's recent
        history. One round trip."""
        pipe = self.client.pipeline(transaction=False)
        self.remember_queue(pipe, user_id=user_id, past=past, score=score)
        pipe.execute()

    def remember_queue(
        self, pipe: Any, *, user_id: uuid.UUID, past: PastCompletion, score: int | None = None
    ) -> None:
        """`remember`'s commands, added to the caller's pipeline."""
        key = f"{self.base}:u:{user_id}"
        pipe.lpush(key, _encode(past))
        pipe.ltrim(key, 0, settings.FRAUD_HISTORY_SIZE - 1)
        pipe.expire(key, _HISTORY_TTL)
        if score is not None:
            pipe.set(f"{self.base}:s:{user_id}", score, ex=_HISTORY_TTL)


class LocalSignalStore:
    """The embedded default's signal store, in the local cache (one process)."""

    _lock = threading.Lock()

    def __init__(self) -> None:
        self.cache = caches["strict"]

    def read(
        self, *, user_id: uuid.UUID, ip: str | None, now: float
    ) -> tuple[list[PastCompletion], int, int | None]:
        window = settings.FRAUD_FARM_WINDOW_SECONDS
        with self._lock:
            history = self.cache.get(f"fraud:u:{user_id}", [])
            seen: dict[str, float] = self.cache.get(f"fraud:ip:{ip or 'unknown'}", {})
            seen = {uid: at for uid, at in seen.items() if at > now - window}
            seen[str(user_id)] = now
            self.cache.set(f"fraud:ip:{ip or 'unknown'}", seen, timeout=int(window) + 1)
            score = self.cache.get(f"fraud:s:{user_id}")
        return [past for past in map(_decode, history) if past is not None], len(seen), score

    def remember(
        self, *, user_id: uuid.UUID, past: PastCompletion, score: int | None = None
    ) -> None:
        key = f"fraud:u:{user_id}"
        with self._lock:
            history = [_encode(past), *self.cache.get(key, [])]
            self.cache.set(key, history[: settings.FRAUD_HISTORY_SIZE], timeout=_HISTORY_TTL)
            if score is not None:
                self.cache.set(f"fraud:s:{user_id}", score, timeout=_HISTORY_TTL)


def signal_store() -> RedisSignalStore | LocalSignalStore:
    return LocalSignalStore() if settings.EMBEDDED else RedisSignalStore()
