"""The ranking index: a Redis sorted set, derived from PostgreSQL and rebuildable from it.

Order: higher score first; on equal scores, whoever reached the score first; then the
lower user id (the same order as `User.objects.ranked()`). Redis orders equal scores by
member bytes, so the tie-break lives in the member, a 24-byte binary string:

    member = inverted reached-at (8 bytes) + inverted user id (16 bytes, the "field")

both big-endian and bitwise inverted, so that ZREVRANGE (highest first) puts the
earliest time and then the lowest id first (PostgreSQL compares uuids bytewise too).
Scores are stored as doubles: exact up to 2**53 points; above that, totals are rounded
to the nearest double and users within one rounding step of each other may tie.

Per user, one entry in a small hash ("bucket", 65,536 of them, chosen by the last two
bytes of the field) maps the field to

    value = inverted reached-at (8 bytes) + last applied ledger entry id (8 bytes) + username

so the member can be found from the user id (to move or rank a user), writes are
monotonic, and a page of the board needs no database query. Small hashes are stored by
Redis as listpacks (a few bytes of overhead per entry instead of ~100 for a big hash), as
long as a bucket holds at most `hash-max-listpack-entries` (128 by default: ~8M users)
and a username fits `hash-max-listpack-value` (64 bytes, minus 16); past that a bucket
just costs more memory.

Generations. A rebuild writes a complete new generation of keys, then points the
`ready` key at it in one atomic step (and deletes the old generation). Every read and
write reads `ready` in the same Lua call as the data: without it the index is *cold*
(lost or never built), reads report so (`IndexColdError`) instead of answering an empty or
partial board, and incremental writes only go to `pending`, which the rebuild applies in
the step that makes it current (so they never make a cold index look complete). Keys, all
under `<REDIS_KEY_PREFIX>:lb:`:

  ready             string   current generation (written last by a rebuild)
  g:<gen>:z         zset     member -> score
  g:<gen>:n:<hhhh>  hash     field -> value (see above)
  building          string   the generation being built, while a rebuild runs
  pending           hash     field -> the newest write made while cold or rebuilding
  v                 string   index version: on every change max(v + 1, Redis clock in us)
  vrun              string   run_id of the Redis process that last checked `v` (see PAGE)
  dirty             string   set when the board changed since the last push (time of change)
  rebuild           string   the rebuild lock (single flight across processes)

The Lua scripts name the generation's keys themselves (from `ready`), so the index
needs a single Redis, not a cluster. The index keys have no TTL: under a `volatile-*` or
`noeviction` policy they are never evicted; an `allkeys-*` policy is not supported.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from redis.exceptions import NoScriptError

from core.redis_client import redis_strict
from core.redis_scripts import redis_script

BUCKET_BYTES = 2  # 65,536 buckets: ~15 users each at 1M, listpacks up to ~8M users
_MASK128 = (1 << 128) - 1
_MAX_MICROS = (1 << 63) - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
# Legacy layout (before generations): deleted by the first rebuild.
_LEGACY_KEYS = ("z", "m", "u", "e")

# The index version never goes backwards, whatever Redis lost: every change sets it to
# max(v + 1, the Redis clock in microseconds), so a version counted again from zero (a
# flush) or from an older snapshot (a restart) starts above every version handed out
# before (at most one change per microsecond keeps it at the clock). Lua numbers are
# doubles: exact to 2**53, the year 2255 in microseconds; written with '%.0f' because
# Redis formats a Lua number with 14 digits.
_BUMP = """
local function clock_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function bump(key, floor)
  local v = tonumber(redis.call('GET', key) or '0')
  local now = math.max(clock_us(), floor or 0)
  if v < now then v = now else v = v + 1 end
  local text = string.format('%.0f', v)
  redis.call('SET', key, text)
  return text
end
"""

# Sets one user's entry in one generation, unless it holds a newer ledger entry.
_PUT = """
local function put(generations, gen, field, score, at, entry, name, ranked)
  local z = generations .. gen .. ':z'
  local suffix = string.format('%02x%02x', string.byte(field, 15, 16))
  local bucket = generations .. gen .. ':n:' .. suffix
  local old = redis.call('HGET', bucket, field)
  if old then
    if entry < struct.unpack('>I8', old, 9) then return 0 end
    redis.call('ZREM', z, string.sub(old, 1, 8) .. field)
  end
  if ranked == '1' then redis.call('ZADD', z, score, at .. field) end
  redis.call('HSET', bucket, field, at .. struct.pack('>I8', entry) .. name)
  return 1
end
"""

# While the index is cold or being rebuilt, a write is also kept in `pending` (the newest
# per user), which the rebuild applies in the same atomic step that makes it current:
# so a write that lands while a rebuild runs is never missing from the new generation.
APPLY = (
    _BUMP
    + _PUT
    + """
local entry = tonumber(ARGV[4])
local gen = redis.call('GET', KEYS[1])
if (not gen) or redis.call('EXISTS', KEYS[4]) == 1 then
  local held = redis.call('HGET', KEYS[5], ARGV[2])
  if (not held) or entry >= cmsgpack.unpack(held)[1] then
    redis.call('HSET', KEYS[5], ARGV[2], cmsgpack.pack({entry, ARGV[3], ARGV[5], ARGV[6], ARGV[7]}))
  end
end
if not gen then return {-1, -1} end
local applied = put(ARGV[1], gen, ARGV[2], ARGV[3], ARGV[5], entry, ARGV[6], ARGV[7])
if applied == 1 then
  bump(KEYS[2])
  redis.call('SET', KEYS[3], ARGV[8], 'NX')
end
-- The user's rank as the index now holds it (0-based; -1 when not on the board), so a
-- write that needs the new rank costs no second round trip.
local suffix = string.format('%02x%02x', string.byte(ARGV[2], 15, 16))
local held = redis.call('HGET', ARGV[1] .. gen .. ':n:' .. suffix, ARGV[2])
local z = ARGV[1] .. gen .. ':z'
local rank = held and redis.call('ZREVRANK', z, string.sub(held, 1, 8) .. ARGV[2])
-- The writer's after-commit messages, in this same round trip: wake the broadcasters
-- (ARGV[9]) and tell the user their score and rank (ARGV[10]: user id, newline, JSON).
if ARGV[9] and ARGV[9] ~= '' then redis.call('PUBLISH', ARGV[9], '') end
if ARGV[10] and ARGV[10] ~= '' then
  local shown = rank and tostring(rank + 1) or 'null'
  redis.call('PUBLISH', ARGV[10], ARGV[11] .. '\\n{"type":"me.update","score":' .. ARGV[3]
    .. ',"rank":' .. shown .. '}')
end
return {applied, rank or -1}
"""
)

# A page of the board, unless the caller already holds it: ARGV[4] is the tag of the
# copy the caller holds, and an unchanged board answers {2} instead of the page (see
# `PageMemory`). The tag is the generation, the version and the server's run_id: a
# Redis that restarted from an older snapshot (or a replica promoted in its place) runs
# under another run_id, so a tag from before never matches it (INFO costs Redis about
# 5 us). Such a Redis also holds an older version than the one readers were last told:
# the first read under a new run_id (`vrun` differs) bumps it past the clock, as it does
# when the version is below ARGV[5], the highest version this process answered while
# it read PostgreSQL instead (Redis down or cold).
PAGE = (
    _BUMP
    + """
local gen = redis.call('GET', KEYS[1])
if not gen then return {0} end
local version = redis.call('GET', KEYS[2]) or '0'
local server = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
local floor = tonumber(ARGV[5])
if redis.call('GET', KEYS[3]) ~= server or tonumber(version) < floor then
  version = bump(KEYS[2], floor)
  redis.call('SET', KEYS[3], server)
end
local tag = gen .. ':' .. version .. ':' .. server
if tag == ARGV[4] then return {2} end
local z = ARGV[1] .. gen .. ':z'
local buckets = ARGV[1] .. gen .. ':n:'
local items = redis.call('ZREVRANGE', z, ARGV[2], ARGV[3], 'WITHSCORES')
local values = {}
for i = 1, #items, 2 do
  local field = string.sub(items[i], 9)
  local bucket = buckets .. string.format('%02x%02x', string.byte(field, 15, 16))
  local value = redis.call('HGET', bucket, field)
  if not value then return {0} end
  values[#values + 1] = value
end
return {1, items, values, redis.call('ZCARD', z), version, tag}
"""
)

RANK = """
local gen = redis.call('GET', KEYS[1])
if not gen then return {0} end
local value = redis.call('HGET', ARGV[1] .. gen .. ':n:' .. ARGV[3], ARGV[2])
if not value then return {1} end
local z = ARGV[1] .. gen .. ':z'
local member = string.sub(value, 1, 8) .. ARGV[2]
local rank = redis.call('ZREVRANK', z, member)
if not rank then return {1} end
return {2, rank, redis.call('ZSCORE', z, member)}
"""

# Makes a fully built generation current, with the writes kept while it was built,
# unless its keys were lost meanwhile (the `building` mark is gone or names another
# generation, or the set is short): then the rebuild fails, and the next cold read
# starts another one.
PUBLISH = (
    _BUMP
    + _PUT
    + """
if redis.call('GET', KEYS[4]) ~= ARGV[2] then return false end
if redis.call('ZCARD', KEYS[6]) ~= tonumber(ARGV[3]) then return false end
local pending = redis.call('HGETALL', KEYS[5])
for i = 1, #pending, 2 do
  local w = cmsgpack.unpack(pending[i + 1])
  put(ARGV[1], ARGV[2], pending[i], w[2], w[3], w[1], w[4], w[5])
end
local old = redis.call('GET', KEYS[1]) or ''
redis.call('SET', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[4], KEYS[5])
bump(KEYS[2])
redis.call('SET', KEYS[3], ARGV[4], 'NX')
return old
"""
)

# Loads a batch of rows of a new generation: records of field (16 bytes), its bucket
# (4 hex digits), value head (inverted time and entry id, 16 bytes), score (1-byte
# length, decimal: exact in, the sorted set rounds past 2**53), username (2-byte length,
# UTF-8). One call per batch instead of two commands per user: the rebuild's cost is
# mostly per-command overhead. (Batches stay far below Lua's 8,000 `unpack` limit.)
LOAD = """
local blob, buckets, z = ARGV[2], ARGV[1], KEYS[1]
local pos, last, members = 1, #ARGV[2], {}
while pos <= last do
  local field = string.sub(blob, pos, pos + 15)
  local bucket = string.sub(blob, pos + 16, pos + 19)
  local head = string.sub(blob, pos + 20, pos + 35)
  local size = string.byte(blob, pos + 36)
  members[#members + 1] = string.sub(blob, pos + 37, pos + 36 + size)
  members[#members + 1] = string.sub(head, 1, 8) .. field
  pos = pos + 37 + size
  size = string.byte(blob, pos) * 256 + string.byte(blob, pos + 1)
  redis.call('HSET', buckets .. bucket, field, head .. string.sub(blob, pos + 2, pos + 1 + size))
  pos = pos + 2 + size
end
if #members > 0 then redis.call('ZADD', z, unpack(members)) end
return #members / 2
"""

RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class _Loader:
    """Sends the rebuild's batches from a thread of its own, so that reading PostgreSQL
    and encoding the next batches overlap with Redis loading the previous ones."""

    IN_FLIGHT = 8

    def __init__(self, load: Any, client: Any, key: str, buckets: str) -> None:
        self.load, self.client, self.key, self.buckets = load, client, key, buckets
        self.jobs: queue.Queue[bytes | None] = queue.Queue(maxsize=self.IN_FLIGHT * 2)
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="leaderboard-load", daemon=True)
        self.thread.start()

    def put(self, blob: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.jobs.put(blob)

    def close(self) -> None:
        """Wait until every batch is loaded; raise what failed, if anything did."""
        self.jobs.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        queued = 0
        while (blob := self.jobs.get()) is not None:
            if self.error is not None:
                continue  # drain: the producer raises on its next put()
            try:
                self.load(keys=[self.key], args=[self.buckets, blob], client=pipe)
                queued += 1
                if queued >= self.IN_FLIGHT or self.jobs.empty():
                    pipe.execute()
                    queued = 0
            except BaseException as exc:
                self.error = exc
        try:
            if queued and self.error is None:
                pipe.execute()
        except BaseException as exc:
            self.error = exc


class IndexColdError(Exception):
    """The index is missing or incomplete (never built, or Redis lost its data)."""


def user_field(user_id: uuid.UUID) -> bytes:
    """The inverted user id: the member's tail and the user's key in their bucket."""
    return (user_id.int ^ _MASK128).to_bytes(16, "big")


def user_id_of(field: bytes) -> uuid.UUID:
    return uuid.UUID(int=int.from_bytes(field, "big") ^ _MASK128)


def bucket_of(field: bytes) -> str:
    return field[-BUCKET_BYTES:].hex()


def micros_of(reached_at: datetime) -> int:
    """Microseconds since 1970, exactly (no float)."""
    return (reached_at - _EPOCH) // _MICROSECOND


def inverted_time(reached_at: datetime) -> bytes:
    """The reached-at time, inverted so that earlier sorts higher."""
    return (_MAX_MICROS - micros_of(reached_at)).to_bytes(8, "big")


def member_for(*, user_id: uuid.UUID, reached_at: datetime) -> bytes:
    return inverted_time(reached_at) + user_field(user_id)


@dataclass(frozen=True)
class IndexEntry:
    rank: int
    user_id: str
    username: str
    score: int


@dataclass(frozen=True)
class HeldPage:
    tag: bytes  # generation, version and Redis run_id of the index it was read from
    entries: tuple[IndexEntry, ...]
    total: int
    version: int


class PageMemory:
    """The pages of the board this process last read, each with the tag of the index
    state it was read from.

    A read sends its tag with the page script, which answers "unchanged" instead of the
    page while the generation and version are the same (every change to the index
    raises the version; a rebuild makes a new generation) and the same Redis process
    answers (its run_id, see PAGE: one restored from an older snapshot holds an older
    version). So a board read by many clients between two changes costs Redis a
    comparison and this process no decoding, and is never stale. Bounded: past `size`
    pages it starts again from empty. Threads share it: a read uses the page it found
    before its call, which its tag describes.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._pages: dict[tuple[str, int, int], HeldPage] = {}

    def get(self, key: tuple[str, int, int]) -> HeldPage | None:
        return self._pages.get(key)

    def put(self, key: tuple[str, int, int], page: HeldPage) -> None:
        if len(self._pages) >= self.size and key not in self._pages:
            self._pages = {}
        self._pages[key] = page


page_memory = PageMemory()


class VersionFloor:
    """The highest board version this process answered without the index (from
    PostgreSQL, while Redis was down or the index cold). Page reads send it, so the
    index's version is raised above it before a client reads it from the index again."""

    def __init__(self) -> None:
        self.value = 0

    def answered(self, version: int) -> None:
        self.value = max(self.value, version)


version_floor = VersionFloor()


class RedisIndex:
    """The sorted-set index. Every method raises on Redis errors (callers degrade) and
    reads raise `IndexColdError` when there is no complete index to read."""

    def __init__(self, prefix: str | None = None) -> None:
        self.base = prefix or f"{settings.REDIS_KEY_PREFIX}:lb"
        self.generations = f"{self.base}:g:"
        names = ("ready", "v", "vrun", "dirty", "rebuild", "building", "pending")
        self.keys = {name: f"{self.base}:{name}" for name in names}

    @cached_property
    def client(self) -> Any:
        return redis_strict()

    def _script(self, source: str) -> Any:
        return redis_script(self.client, source)

    def generation_keys(self, generation: str) -> dict[str, str]:
        """The name of one generation's sorted set, and its buckets' common prefix."""
        head = f"{self.generations}{generation}"
        return {"z": f"{head}:z", "buckets": f"{head}:n:"}

    def current_generation(self) -> str | None:
        raw = self.client.get(self.keys["ready"])
        return raw.decode() if raw is not None else None

    def is_ready(self) -> bool:
        return self.current_generation() is not None

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
        """Set a user's committed total. Ignores updates older than the last one applied,
        and every update while the index is cold (the rebuild replays them)."""
        keys, args = self._apply_call(
            user_id=user_id,
            username=username,
            score=score,
            reached_at=reached_at,
            entry_id=entry_id,
            ranked=ranked,
        )
        try:
            return self._applied(self._script(APPLY)(keys=keys, args=args))[0]
        except IndexColdError:
            return False

    def apply_queue(self, pipe: Any, **change: Any) -> Callable[[Any], tuple[bool, int | None]]:
        """`apply` as one command of the caller's pipeline (`pipe`), for a caller that
        sends other commands in the same round trip (`_apply_call` names the changes).
        Returns the function that turns the command's reply (or the exception in its
        place) into (applied, the user's 1-based rank after it or None when not on the
        board); it raises `IndexColdError` when the index is cold (the write is kept for
        the rebuild, and nothing is published).

        When applied to a warm index, the same script PUBLISHes an empty wake-up on
        `wake_channel` and `<user id>\n{"type":"me.update",...}` on `me_channel` (each when
        given), so the writer's after-commit work is one round trip."""
        keys, args = self._apply_call(**change)
        script = self._script(APPLY)
        # Not `script(..., client=pipe)`: a pipeline that runs a script first asks Redis
        # whether it is loaded, a round trip more. A reply NOSCRIPT (Redis restarted or
        # flushed) runs it once more on its own, which loads it.
        pipe.evalsha(script.sha, len(keys), *keys, *args)

        def answer(reply: Any) -> tuple[bool, int | None]:
            if isinstance(reply, NoScriptError):
                reply = script(keys=keys, args=args)
            elif isinstance(reply, Exception):
                raise reply
            return self._applied(reply)

        return answer

    def _apply_call(
        self,
        *,
        user_id: uuid.UUID,
        username: str,
        score: int,
        reached_at: datetime,
        entry_id: int,
        ranked: bool,
        wake_channel: str = "",
        me_channel: str = "",
    ) -> tuple[list[str], list[Any]]:
        k = self.keys
        keys = [k["ready"], k["v"], k["dirty"], k["building"], k["pending"]]
        args = [
            self.generations,
            user_field(user_id),
            score,
            entry_id,
            inverted_time(reached_at),
            username.encode(),
            "1" if ranked and score > 0 else "0",
            repr(time.time()),
            wake_channel,
            me_channel,
            str(user_id),
        ]
        return keys, args

    @staticmethod
    def _applied(reply: Any) -> tuple[bool, int | None]:
        applied, rank = reply
        if applied == -1:
            raise IndexColdError
        return applied == 1, (int(rank) + 1 if rank >= 0 else None)

    def page(self, *, offset: int, limit: int) -> tuple[list[IndexEntry], int, int]:
        """(entries, total ranked users, index version) for ranks offset+1..offset+limit.

        One script call either way: it sends the page only when the board changed since
        the copy this process holds (`PageMemory`), so a read always answers the board as
        the index holds it at that moment.
        """
        k = self.keys
        memory_key = (self.base, offset, limit)
        held = page_memory.get(memory_key)
        found = self._script(PAGE)(
            keys=[k["ready"], k["v"], k["vrun"]],
            args=[
                self.generations,
                offset,
                offset + limit - 1,
                held.tag if held else b"",
                version_floor.value,
            ],
        )
        if found[0] == 0:
            raise IndexColdError
        if found[0] == 2 and held is not None:
            return list(held.entries), held.total, held.version
        _, items, values, total, version, tag = found
        entries = tuple(
            IndexEntry(
                rank=offset + i + 1,
                user_id=str(user_id_of(items[2 * i][8:])),
                username=value[16:].decode(),
                score=int(float(items[2 * i + 1])),
            )
            for i, value in enumerate(values)
        )
        page = HeldPage(tag=tag, entries=entries, total=int(total), version=int(version))
        page_memory.put(memory_key, page)
        return list(entries), page.total, page.version

    def rank(self, *, user_id: uuid.UUID) -> tuple[int, int] | None:
        """(1-based rank, score), or None when the user is not on the board."""
        field = user_field(user_id)
        found = self._script(RANK)(
            keys=[self.keys["ready"]], args=[self.generations, field, bucket_of(field)]
        )
        if found[0] == 0:
            raise IndexColdError
        if found[0] == 1:
            return None
        return int(found[1]) + 1, int(float(found[2]))

    def version(self) -> int:
        return int(self.client.get(self.keys["v"]) or 0)

    def take_dirty(self) -> float | None:
        """Clear the board's dirty mark; the time it was first set, if it was set."""
        value = self.client.getdel(self.keys["dirty"])
        return float(value) if value is not None else None

    # The rebuild lock: one rebuild at a time across every process.

    def claim_rebuild(self, *, ttl_ms: int) -> str | None:
        """Take the rebuild lock; its token, or None when another process holds it."""
        token = uuid.uuid4().hex
        if self.client.set(self.keys["rebuild"], token, nx=True, px=ttl_ms):
            return token
        return None

    def renew_rebuild(self, token: str, *, ttl_ms: int) -> bool:
        return bool(self._script(RENEW)(keys=[self.keys["rebuild"]], args=[token, ttl_ms]))

    def release_rebuild(self, token: str) -> None:
        self._script(RELEASE)(keys=[self.keys["rebuild"]], args=[token])

    def replace(
        self,
        rows: Iterable[tuple[bytes, str, int, int, int]],
        *,
        batch: int = 1000,
        progress: Callable[[int], None] | None = None,
    ) -> int:
        """Build a new generation from (user id as 16 bytes, username, score, reached-at
        microseconds since 1970, last entry id) rows, streamed in pipelined batches, then make it
        current atomically and delete the old one. Returns the number of ranked users.
        Raises `IndexColdError` when the new generation's keys were lost meanwhile."""
        generation = uuid.uuid4().hex[:12]
        new = self.generation_keys(generation)
        client = self.client
        # A rebuild that died half-way left its generation behind (we hold the lock).
        abandoned = client.getset(self.keys["building"], generation)
        client.expire(self.keys["building"], 3600)
        if abandoned is not None:
            self._drop_generation(abandoned.decode())
        loader = _Loader(self._script(LOAD), self.client, new["z"], new["buckets"])
        records: list[bytes] = []
        count = 0
        try:
            for user_id, username, score, micros, entry_id in rows:
                name = username.encode()
                points = str(score).encode()
                field = (int.from_bytes(user_id, "big") ^ _MASK128).to_bytes(16, "big")
                records.append(
                    b"".join(
                        (
                            field,
                            field[-BUCKET_BYTES:].hex().encode(),
                            (_MAX_MICROS - micros).to_bytes(8, "big"),
                            entry_id.to_bytes(8, "big"),
                            len(points).to_bytes(1, "big"),
                            points,
                            len(name).to_bytes(2, "big"),
                            name,
                        )
                    )
                )
                if len(records) >= batch:
                    loader.put(b"".join(records))
                    count += len(records)
                    records = []
                    if progress and count % (batch * 10) == 0:
                        progress(count)
            if records:
                loader.put(b"".join(records))
                count += len(records)
        finally:
            loader.close()
        k = self.keys
        old = self._script(PUBLISH)(
            keys=[k["ready"], k["v"], k["dirty"], k["building"], k["pending"], new["z"]],
            args=[self.generations, generation, count, repr(time.time())],
        )
        if old is None:
            self._drop_generation(generation)
            raise IndexColdError("the index's keys were lost while it was being rebuilt")
        if old:
            self._drop_generation(old.decode())
        client.unlink(*(f"{self.base}:{name}" for name in _LEGACY_KEYS))
        return count

    def _drop_generation(self, generation: str) -> None:
        keys = self.generation_keys(generation)
        pipe = self.client.pipeline(transaction=False)
        pipe.unlink(keys["z"])
        names = [f"{keys['buckets']}{n:04x}" for n in range(1 << (8 * BUCKET_BYTES))]
        for start in range(0, len(names), 1000):
            pipe.unlink(*names[start : start + 1000])
        pipe.execute()
