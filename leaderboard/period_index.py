"""The ranking index of each held period (the current one of every board, and the
previous one until it is closed): the global index's design (leaderboard/index.py:
generations, `pending` while cold, monotonic writes, versions that never go back) under
a prefix of its own, rebuilt from the period's running totals (`PeriodScore`).

One entry's writes to the global index and to every period it was credited to are one
script (`APPLY_MANY`), in the request's after-commit round trip.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, connections, transaction
from django.utils import timezone

from core import metrics
from core.redis_scripts import redis_script, script_queue
from leaderboard.index import IndexColdError, RedisIndex
from leaderboard.index_layout import inverted_time, micros_of, user_field
from leaderboard.index_lua import APPLY_MANY
from leaderboard.models import Period, PeriodScore

logger = logging.getLogger(__name__)

REBUILD_LOCK_MS = 30_000
INLINE_REBUILD_MAX_USERS = 5_000


# A period's index has fewer buckets than the global one's 65,536: 4,096 keep a board of
# 100k users under 200 bytes a user (a bucket's key costs about 60-90 bytes; at 65,536
# buckets a board of 100k paid it for every 1.5 users: 244 bytes a user).
PERIOD_BUCKETS = 4096


def period_index(period_id: int) -> RedisIndex:
    return RedisIndex(
        prefix=f"{settings.REDIS_KEY_PREFIX}:lb:p:{period_id}", buckets=PERIOD_BUCKETS
    )


def period_label(board: str, key: str) -> str:
    """The start of the period's item in `me.update`'s `boards` (JSON, closed by Lua)."""
    return '{"board":"%s","period":"%s"' % (board, key)  # noqa: UP031 - slug and key: [\w-]


def apply_many_queue(
    pipe: Any,
    *,
    user_id: uuid.UUID,
    username: str,
    entry_id: int,
    ranked: bool,
    indexes: Sequence[tuple[RedisIndex, int, datetime, str]],
    wake_channel: str,
    me_channel: str,
) -> Callable[[Any], list[tuple[bool, int | None] | None]]:
    """Queue one script that applies the entry to every index in `indexes` ((index,
    the user's score there, reached-at, label), the global index first, label ''). The
    returned function turns the reply into one (applied, 1-based rank or None) per index,
    or None for an index that is cold (its write is kept for the rebuild)."""
    field = user_field(user_id)
    keys: list[str] = []
    args: list[Any] = [
        field,
        entry_id,
        username.encode(),
        repr(time.time()),
        wake_channel,
        me_channel,
        str(user_id),
        len(indexes),
    ]
    for index, score, reached_at, label in indexes:
        k = index.keys
        keys += [k["ready"], k["v"], k["dirty"], k["building"], k["pending"]]
        args += [
            index.generations,
            score,
            inverted_time(reached_at),
            "1" if ranked and score > 0 else "0",
            label,
            index.buckets,
        ]
    reply_of = script_queue(pipe, redis_script(indexes[0][0].client, APPLY_MANY), keys, args)

    def answer(got: Any) -> list[tuple[bool, int | None] | None]:
        reply = reply_of(got)
        found: list[tuple[bool, int | None] | None] = []
        for i in range(0, len(reply), 2):
            applied, rank = int(reply[i]), int(reply[i + 1])
            found.append(None if applied == -1 else (applied == 1, rank + 1 if rank >= 0 else None))
        return found

    return answer


def period_rows(period_id: int) -> Iterator[tuple[bytes, str, int, int, int]]:
    """The period's ranked users as the index's rebuild takes them. On PostgreSQL from a
    named cursor inside a transaction (each fetch one bounded statement), as the global
    rebuild reads; `.iterator()` outside one would run the whole query as one statement."""
    rows = (
        PeriodScore.objects.filter(
            period_id=period_id, score__gt=0, user__is_active=True, user__is_banned=False
        )
        .values_list("user_id", "user__username", "score", "reached_at", "entry_id")
        .order_by()
    )
    if connection.vendor != "postgresql":
        for user_id, username, score, reached_at, entry_id in rows.iterator(10_000):
            yield user_id.bytes, username, score, micros_of(reached_at), entry_id
        return
    sql, params = rows.query.sql_with_params()
    with transaction.atomic(), connection.connection.cursor(name="period_rebuild") as cursor:
        cursor.itersize = 10_000
        cursor.execute(sql, params)
        for user_id, username, score, reached_at, entry_id in cursor:
            yield user_id.bytes, username, score, micros_of(reached_at), entry_id


def period_index_rebuild(period_id: int, *, wait_seconds: float = 60.0) -> int:
    """Rebuild a period's index from PostgreSQL (single flight across processes)."""
    index = period_index(period_id)
    deadline = time.monotonic() + wait_seconds
    while (token := index.claim_rebuild(ttl_ms=REBUILD_LOCK_MS)) is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"another rebuild of period {period_id}'s index is running")
        time.sleep(0.05)
    try:
        return _rebuild(index, period_id, token)
    finally:
        index.release_rebuild(token)


def _rebuild(index: RedisIndex, period_id: int, token: str) -> int:
    def keep_lock(_count: int) -> None:
        if not index.renew_rebuild(token, ttl_ms=REBUILD_LOCK_MS):
            raise TimeoutError("lost the rebuild lock; another rebuild took over")

    started = time.monotonic()
    ranked = index.replace(period_rows(period_id), progress=keep_lock)
    logger.info(
        "period %s index rebuilt: %s ranked users in %.2f s",
        period_id,
        ranked,
        time.monotonic() - started,
    )
    return ranked


def period_index_cold(period_id: int) -> None:
    """A read or a write found a period's index cold: rebuild it once (inline when small,
    else in a background thread), unless a rebuild runs somewhere. Raises on Redis
    errors (callers degrade: reads answer from PostgreSQL)."""
    index = period_index(period_id)
    token = index.claim_rebuild(ttl_ms=REBUILD_LOCK_MS)
    if token is None:
        return
    try:
        if index.is_ready():
            index.release_rebuild(token)
            return
        small = (
            PeriodScore.objects.filter(period_id=period_id)[: INLINE_REBUILD_MAX_USERS + 1].count()
            <= INLINE_REBUILD_MAX_USERS
        )
    except Exception:
        index.release_rebuild(token)
        raise
    if small:
        _rebuild_and_release(index, period_id, token)
        return
    threading.Thread(
        target=_rebuild_in_background, args=(index, period_id, token), daemon=True
    ).start()


def _rebuild_and_release(index: RedisIndex, period_id: int, token: str) -> None:
    try:
        _rebuild(index, period_id, token)
    except Exception:
        metrics.backing_service_errors.labels("redis").inc()
        logger.exception("period %s index rebuild failed; the next cold read retries", period_id)
    finally:
        try:
            index.release_rebuild(token)
        except Exception:
            logger.warning("could not release the rebuild lock; it expires by itself")


def _rebuild_in_background(index: RedisIndex, period_id: int, token: str) -> None:
    try:
        _rebuild_and_release(index, period_id, token)
    finally:
        connections.close_all()


def period_index_drop(period_id: int) -> None:
    """Delete a closed period's index (closed periods are served from PostgreSQL)."""
    index = period_index(period_id)
    generation = index.current_generation()
    building = index.client.get(index.keys["building"])
    for gen in {generation, building.decode() if building else None} - {None}:
        index.drop_generation(gen)  # type: ignore[arg-type]
    index.client.unlink(*index.keys.values())


def period_index_is_cold(period_id: int) -> bool:
    return not period_index(period_id).is_ready()


def held_periods() -> list[Period]:
    """The periods whose index Redis holds: every one not closed yet (all time included)."""
    return list(
        Period.objects.exclude(state=Period.State.CLOSED)
        .filter(board__is_active=True)
        .select_related("board")
    )


__all__ = [
    "IndexColdError",
    "apply_many_queue",
    "held_periods",
    "period_index",
    "period_index_cold",
    "period_index_drop",
    "period_index_rebuild",
    "period_label",
    "period_reconcile",
    "period_rows",
]


RECONCILE_SETTLE_SECONDS = 10


def period_reconcile(*, batch: int = 5000) -> int:
    """Replay into each held period's index the running totals written since its
    watermark (the global reconciler's counterpart): converges after a process died
    between a commit and its index update. A cold index is rebuilt instead. Idempotent:
    index writes ignore anything older than what they hold."""
    if settings.EMBEDDED:
        return 0
    replayed = 0
    settled = timezone.now() - timedelta(seconds=RECONCILE_SETTLE_SECONDS)
    for period in held_periods():
        index = period_index(period.pk)
        if not index.is_ready():
            period_index_cold(period.pk)
            continue
        key = f"{index.base}:watermark"
        watermark = int(index.client.get(key) or 0)
        rows = list(
            PeriodScore.objects.filter(period=period, entry_id__gt=watermark)
            .order_by("entry_id")
            .values_list(
                "user_id",
                "user__username",
                "score",
                "reached_at",
                "entry_id",
                "user__is_active",
                "user__is_banned",
            )[:batch]
        )
        for user_id, username, score, reached_at, entry_id, active, banned in rows:
            index.apply(
                user_id=user_id,
                username=username,
                score=score,
                reached_at=reached_at,
                entry_id=entry_id,
                ranked=active and not banned,
            )
        old_enough = [row[4] for row in rows if row[3] < settled]
        if old_enough:
            index.client.set(key, max(old_enough))
        replayed += len(rows)
    return replayed
