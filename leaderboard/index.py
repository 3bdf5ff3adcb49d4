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
from datetime import datetime
from functools import cached_property
from typing import Any

from django.conf import settings

from core.redis_batch import redis_later
from core.redis_client import redis_strict
from core.redis_scripts import redis_script, script_queue
from leaderboard.index_layout import (
    BUCKETS,
    MASK128,
    MAX_MICROS,
    bucket_of,
    inverted_time,
    user_field,
    user_id_of,
)
from leaderboard.index_lua import APPLY, LOAD, PAGE, PUBLISH, RANK, RELEASE, RENEW

# Legacy layout (before generations): deleted by the first rebuild.
_LEGACY_KEYS = ("z", "m", "u", "e")


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


@dataclass(frozen=True)
class IndexEntry:
    rank: int
    user_id: str
    username: str
    score: int


# A page's answer: (entries, total ranked users, index version).
PageRead = tuple[list[IndexEntry], int, int]


@dataclass(frozen=True)
class HeldPage:
    tag: bytes  # generation, version and Redis run_id of the index it was read from
    entries: tuple[IndexEntry, ...]
    total: int
    version: int


class PageAhead:
    """A page read ahead, as one command of the caller's Redis round trip
    (`RedisIndex.page_ahead`); `read` answers it once that round trip is over."""

    def __init__(self, index: RedisIndex, *, offset: int, limit: int) -> None:
        self.index, self.offset, self.limit = index, offset, limit
        self._answer: Callable[[Any], PageRead] | None = None
        self._heard = False
        self._reply: Any = None  # the command's reply, or the pipeline's exception
        redis_later(self._queue, self._done)

    def _queue(self, pipe: Any) -> None:
        self._answer = self.index.page_queue(pipe, offset=self.offset, limit=self.limit)

    def _done(self, replies: list[Any] | Exception) -> None:
        self._heard = True
        self._reply = replies if isinstance(replies, Exception) else replies[0]

    def read(self) -> PageRead:
        """`page`'s answer (raises as `page` does)."""
        if not self._heard:  # queued, but the block that sends it has not ended
            return self.index.page(offset=self.offset, limit=self.limit)
        if self._answer is None:  # the pipeline failed before this read was in it
            raise self._reply
        return self._answer(self._reply)

    def answers(self, index: RedisIndex, *, offset: int, limit: int) -> bool:
        """Whether this is the read of that page."""
        return index.base == self.index.base and (offset, limit) == (self.offset, self.limit)


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

    def __init__(self, prefix: str | None = None, *, buckets: int = BUCKETS) -> None:
        self.base = prefix or f"{settings.REDIS_KEY_PREFIX}:lb"
        self.buckets = buckets  # see index_layout.bucket_of
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
        reply_of = script_queue(pipe, self._script(APPLY), keys, args)
        return lambda reply: self._applied(reply_of(reply))

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
            self.buckets,
        ]
        return keys, args

    @staticmethod
    def _applied(reply: Any) -> tuple[bool, int | None]:
        applied, rank = reply
        if applied == -1:
            raise IndexColdError
        return applied == 1, (int(rank) + 1 if rank >= 0 else None)

    def page(self, *, offset: int, limit: int, ahead: PageAhead | None = None) -> PageRead:
        """(entries, total ranked users, index version) for ranks offset+1..offset+limit.

        One script call either way: it sends the page only when the board changed since
        the copy this process holds (`PageMemory`), so a read always answers the board as
        the index holds it at that moment. `ahead`: this page, if the caller had it read
        in a round trip of its own (`page_ahead`).
        """
        if ahead is not None and ahead.answers(self, offset=offset, limit=limit):
            return ahead.read()
        keys, args, held = self._page_call(offset, limit)
        return self._paged(self._script(PAGE)(keys=keys, args=args), held, offset, limit)

    def page_ahead(self, *, offset: int, limit: int) -> PageAhead:
        """Queue this page's read in the enclosing `redis_batch()` (sent when the block
        ends, with the other commands queued there; outside a block, now)."""
        return PageAhead(self, offset=offset, limit=limit)

    def page_queue(self, pipe: Any, *, offset: int, limit: int) -> Callable[[Any], PageRead]:
        """`page` as one command of the caller's pipeline (`pipe`), for a read that sends
        other commands in the same round trip. Returns the function that turns the
        command's reply (or the exception in its place) into `page`'s answer; it raises
        `IndexColdError` when the index is cold, and the reply's exception otherwise."""
        keys, args, held = self._page_call(offset, limit)
        reply_of = script_queue(pipe, self._script(PAGE), keys, args)
        return lambda reply: self._paged(reply_of(reply), held, offset, limit)

    def _page_call(self, offset: int, limit: int) -> tuple[list[str], list[Any], HeldPage | None]:
        k = self.keys
        held = page_memory.get((self.base, offset, limit))
        args = [
            self.generations,
            offset,
            offset + limit - 1,
            held.tag if held else b"",
            version_floor.value,
            self.buckets,
        ]
        return [k["ready"], k["v"], k["vrun"]], args, held

    def _paged(self, found: Any, held: HeldPage | None, offset: int, limit: int) -> PageRead:
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
        page_memory.put((self.base, offset, limit), page)
        return list(entries), page.total, page.version

    def rank(self, *, user_id: uuid.UUID) -> tuple[int, int] | None:
        """(1-based rank, score), or None when the user is not on the board."""
        field = user_field(user_id)
        found = self._script(RANK)(
            keys=[self.keys["ready"]],
            args=[self.generations, field, bucket_of(field, self.buckets)],
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
            self.drop_generation(abandoned.decode())
        loader = _Loader(self._script(LOAD), self.client, new["z"], new["buckets"])
        records: list[bytes] = []
        count = 0
        try:
            for user_id, username, score, micros, entry_id in rows:
                name = username.encode()
                points = str(score).encode()
                field = (int.from_bytes(user_id, "big") ^ MASK128).to_bytes(16, "big")
                records.append(
                    b"".join(
                        (
                            field,
                            bucket_of(field, self.buckets).encode(),
                            (MAX_MICROS - micros).to_bytes(8, "big"),
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
            args=[self.generations, generation, count, repr(time.time()), self.buckets],
        )
        if old is None:
            self.drop_generation(generation)
            raise IndexColdError("the index's keys were lost while it was being rebuilt")
        if old:
            self.drop_generation(old.decode())
        client.unlink(*(f"{self.base}:{name}" for name in _LEGACY_KEYS))
        return count

    def drop_generation(self, generation: str) -> None:
        keys = self.generation_keys(generation)
        pipe = self.client.pipeline(transaction=False)
        pipe.unlink(keys["z"])
        names = [f"{keys['buckets']}{n:04x}" for n in range(self.buckets)]
        for start in range(0, len(names), 1000):
            pipe.unlink(*names[start : start + 1000])
        pipe.execute()
