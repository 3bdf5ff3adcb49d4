"""The ranking index: a Redis sorted set, derived from PostgreSQL and rebuildable from it.

Order: higher score first; on equal scores, whoever reached the score first; then the
lower user id (the same order as `User.objects.ranked()`). Redis orders equal scores by
member bytes, so the tie-break lives in the member: the *inverted* reached-at time in
microseconds and the *inverted* user id, both fixed width, so that ZREVRANGE (highest
first) puts the earliest and then the lowest id first. Scores are stored as doubles:
exact up to 2**53 points.

Keys, all under `<REDIS_KEY_PREFIX>:lb:`:
  z      sorted set  member -> score
  m      hash        user id -> member (to move a user when their score changes)
  u      hash        member -> "user id<TAB>username"
  e      hash        user id -> id of the last ledger entry applied (writes are monotonic)
  v      string      index version, incremented on every change
  dirty  string      set when the board changed since the last push (value: time of change)
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

from django.conf import settings

_HEX_INVERT = str.maketrans("0123456789abcdef", "fedcba9876543210")
_TIME_SPAN = 10**17  # microseconds; the inverted time stays 17 digits wide until year 5138

APPLY = """
local last = tonumber(redis.call('HGET', KEYS[4], ARGV[1]) or '-1')
if tonumber(ARGV[5]) < last then return 0 end
local old = redis.call('HGET', KEYS[2], ARGV[1])
if old then
  redis.call('ZREM', KEYS[1], old)
  redis.call('HDEL', KEYS[3], old)
end
if ARGV[6] == '1' then
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3])
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
  redis.call('HSET', KEYS[3], ARGV[3], ARGV[1] .. '\\t' .. ARGV[4])
else
  redis.call('HDEL', KEYS[2], ARGV[1])
end
redis.call('HSET', KEYS[4], ARGV[1], ARGV[5])
redis.call('INCR', KEYS[5])
redis.call('SET', KEYS[6], ARGV[7], 'NX')
return 1
"""

PAGE = """
local items = redis.call('ZREVRANGE', KEYS[1], ARGV[1], ARGV[2], 'WITHSCORES')
local members = {}
for i = 1, #items, 2 do members[#members + 1] = items[i] end
local names = {}
if #members > 0 then names = redis.call('HMGET', KEYS[3], unpack(members)) end
return {items, names, redis.call('ZCARD', KEYS[1]), redis.call('GET', KEYS[2]) or '0'}
"""

RANK = """
local member = redis.call('HGET', KEYS[2], ARGV[1])
if not member then return false end
local rank = redis.call('ZREVRANK', KEYS[1], member)
if not rank then return false end
return {rank, redis.call('ZSCORE', KEYS[1], member)}
"""


def member_for(*, user_id: uuid.UUID, reached_at: datetime) -> str:
    micros = int(reached_at.timestamp() * 1_000_000)
    return f"{_TIME_SPAN - 1 - micros:017d}:{user_id.hex.translate(_HEX_INVERT)}"


@dataclass(frozen=True)
class IndexEntry:
    rank: int
    user_id: str
    username: str
    score: int


class RedisIndex:
    """The sorted-set index. Every method raises on Redis errors: callers degrade."""

    def __init__(self, prefix: str | None = None) -> None:
        base = prefix or f"{settings.REDIS_KEY_PREFIX}:lb"
        self.keys = {name: f"{base}:{name}" for name in ("z", "m", "u", "e", "v", "dirty")}

    @cached_property
    def client(self) -> Any:
        from django_redis import get_redis_connection

        return get_redis_connection("strict")

    def _script(self, source: str) -> Any:
        cache = self.__dict__.setdefault("_scripts", {})
        if source not in cache:
            cache[source] = self.client.register_script(source)
        return cache[source]

    def apply(
        self,
        *,
        user_id: uuid.UUID,
        username: str,
        score: int,
        reached_at: datetime,
        entry_id: int,
        ranked: bool,
    ) -> bool:
        """Set a user's committed total. Ignores updates older than the last one applied."""
        k = self.keys
        applied = self._script(APPLY)(
            keys=[k["z"], k["m"], k["u"], k["e"], k["v"], k["dirty"]],
            args=[
                str(user_id),
                score,
                member_for(user_id=user_id, reached_at=reached_at),
                username,
                entry_id,
                "1" if ranked and score > 0 else "0",
                repr(time.time()),
            ],
        )
        return bool(applied)

    def page(self, *, offset: int, limit: int) -> tuple[list[IndexEntry], int, int]:
        """(entries, total ranked users, index version) for ranks offset+1..offset+limit."""
        k = self.keys
        items, names, total, version = self._script(PAGE)(
            keys=[k["z"], k["v"], k["u"]], args=[offset, offset + limit - 1]
        )
        entries = []
        for i, raw_name in enumerate(names):
            user_id, _, username = raw_name.decode().partition("\t")
            score = int(float(items[2 * i + 1]))
            entries.append(IndexEntry(offset + i + 1, user_id, username, score))
        return entries, int(total), int(version)

    def rank(self, *, user_id: uuid.UUID) -> tuple[int, int] | None:
        """(1-based rank, score), or None when the user is not on the board."""
        found = self._script(RANK)(keys=[self.keys["z"], self.keys["m"]], args=[str(user_id)])
        if not found:
            return None
        return int(found[0]) + 1, int(float(found[1]))

    def version(self) -> int:
        return int(self.client.get(self.keys["v"]) or 0)

    def take_dirty(self) -> float | None:
        """Clear the board's dirty mark; the time it was first set, if it was set."""
        value = self.client.getdel(self.keys["dirty"])
        return float(value) if value is not None else None

    def replace(self, rows: list[tuple[uuid.UUID, str, int, datetime, int]]) -> None:
        """Swap in a whole new index built from (user id, username, score, reached at,
        last entry id) rows, atomically (RENAME of fully built keys)."""
        k = self.keys
        tmp = {name: f"{key}:rebuild:{uuid.uuid4().hex}" for name, key in k.items()}
        pipe = self.client.pipeline(transaction=False)
        for user_id, username, score, reached_at, entry_id in rows:
            member = member_for(user_id=user_id, reached_at=reached_at)
            pipe.zadd(tmp["z"], {member: score})
            pipe.hset(tmp["m"], str(user_id), member)
            pipe.hset(tmp["u"], member, f"{user_id}\t{username}")
            pipe.hset(tmp["e"], str(user_id), entry_id)
        pipe.execute()
        swap = self.client.pipeline(transaction=True)
        for name in ("z", "m", "u", "e"):
            if rows:
                swap.rename(tmp[name], k[name])
            else:
                swap.delete(k[name])
        swap.incr(k["v"])
        swap.set(k["dirty"], repr(time.time()), nx=True)
        swap.execute()
