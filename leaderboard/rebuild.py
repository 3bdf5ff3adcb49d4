"""The ranking index's maintenance: the rebuild from PostgreSQL (single flight across
processes, also when a read finds the index cold) and the reconciler that replays recent
ledger entries into it. Never writes scores."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta

from django.conf import settings
from django.core.cache import caches
from django.db import connection, connections, transaction
from django.db.models import BigIntegerField, BinaryField, F, Func, Max
from django.db.models.functions import Cast, Coalesce, Extract
from django.utils import timezone

from accounts.models import User
from core import metrics
from leaderboard import bus
from leaderboard.index import RedisIndex
from leaderboard.index_layout import micros_of
from scoreboard.models import ScoreEntry

logger = logging.getLogger(__name__)

WATERMARK_KEY = "lb:watermark"
RECONCILE_SETTLE_SECONDS = 10
# The rebuild lock's lifetime; the rebuild renews it after every batch, so a rebuilder
# that died lets another process take over within this time.
REBUILD_LOCK_MS = 30_000
REBUILD_BATCH = 10_000
REPLAY_BATCH = 50_000
# A cold index of up to this many ranked users is rebuilt by the read that found it
# cold (a few tens of milliseconds); a bigger one in a background thread.
INLINE_REBUILD_MAX_USERS = 5_000


def index_apply_user(index: RedisIndex, user: User, entry_id: int) -> None:
    index.apply(
        user_id=user.pk,
        username=user.username,
        score=user.score,
        reached_at=user.score_reached_at,
        entry_id=entry_id,
        ranked=user.is_active and not user.is_banned,
    )


def leaderboard_rebuild(*, wait_seconds: float = 60.0) -> int:
    """Rebuild the index from PostgreSQL; returns the number of ranked users.

    Takes the rebuild lock (waiting up to `wait_seconds` for a rebuild that is already
    running), so rebuilds never overlap across processes. Raises when Redis or
    PostgreSQL fails, or when the lock cannot be had in time (`RebuildBusyError`).
    """
    if settings.EMBEDDED:
        return User.objects.rankable().count()
    index = RedisIndex()
    deadline = time.monotonic() + wait_seconds
    while (token := index.claim_rebuild(ttl_ms=REBUILD_LOCK_MS)) is None:
        if time.monotonic() > deadline:
            raise RebuildBusyError("another rebuild of the leaderboard index is running")
        time.sleep(0.1)
    try:
        return _rebuild_holding_lock(index, token)
    finally:
        index.release_rebuild(token)


class RebuildBusyError(RuntimeError):
    pass


def _rebuild_holding_lock(index: RedisIndex, token: str) -> int:
    """Stream ranked users from PostgreSQL into a new generation of the index, make it
    current, then replay the ledger entries that may have landed while it was built.

    Expects the rebuild lock (`token`); renews it as it goes and stops if it was lost.
    """
    started = time.monotonic()
    # Entries old enough to have committed before the snapshot below; everything after
    # is replayed once the new generation is current (writes are monotonic).
    settled = timezone.now() - timedelta(seconds=RECONCILE_SETTLE_SECONDS)
    watermark = ScoreEntry.objects.filter(created_at__lt=settled).aggregate(m=Max("id"))["m"] or 0

    def keep_lock(_count: int) -> None:
        if not index.renew_rebuild(token, ttl_ms=REBUILD_LOCK_MS):
            raise RebuildBusyError("lost the rebuild lock; another rebuild took over")

    ranked = index.replace(_ranked_rows(), progress=keep_lock)
    caches["strict"].set(WATERMARK_KEY, watermark, timeout=None)
    replayed = _replay(index, batch=REPLAY_BATCH)
    bus.mark_dirty()
    logger.info(
        "leaderboard index rebuilt: %s ranked users in %.2f s, %s users replayed",
        ranked,
        time.monotonic() - started,
        replayed,
    )
    return ranked


def _ranked_rows() -> Iterator[tuple[bytes, str, int, int, int]]:
    """Every ranked user as (user id bytes, username, score, reached-at microseconds
    since 1970, id of their last ledger entry), streamed from a server-side cursor.

    The ORM writes the query; the rows come from a binary psycopg cursor rather than
    `.iterator()`, because at a million rows building Django's rows and uuid and
    datetime objects costs more than the query itself (measured: 2-3x the time).
    """
    query = (
        User.objects.rankable()
        .order_by()  # no sort: a sequential scan; the sorted set orders
        .annotate(
            uid=Func(F("id"), function="uuid_send", output_field=BinaryField()),
            micros=Cast(Extract("score_reached_at", "epoch") * 1_000_000, BigIntegerField()),
            last=Coalesce(Max("score_entries__id"), 0),
        )
        .values_list("uid", "username", "score", "micros", "last")
    )
    if connection.vendor != "postgresql":  # e.g. SQLite with REDIS_URL set: small boards
        rows = (
            User.objects.rankable()
            .annotate(last=Coalesce(Max("score_entries__id"), 0))
            .values_list("id", "username", "score", "score_reached_at", "last")
        )
        for user_id, username, score, reached_at, last in rows.iterator(REBUILD_BATCH):
            yield user_id.bytes, username, score, micros_of(reached_at), last
        return
    sql, params = query.query.sql_with_params()
    with transaction.atomic(), connection.cursor() as setup:
        # One pass over every user: hash the join in memory, plan for all rows.
        setup.execute("SET LOCAL work_mem = '64MB'")
        setup.execute("SET LOCAL cursor_tuple_fraction = 1")
        with connection.connection.cursor(name="leaderboard_rebuild", binary=True) as cursor:
            cursor.itersize = REBUILD_BATCH
            cursor.execute(sql, params)
            yield from cursor


def leaderboard_index_cold() -> None:
    """A read found the index cold: start one rebuild, unless one is running anywhere.

    Single flight: only the process that takes the Redis lock rebuilds. A board of up to
    INLINE_REBUILD_MAX_USERS ranked users is rebuilt at once (milliseconds); a bigger one
    in a background thread of this process, off the request path. Needs no Celery
    worker, so it works in every run mode. Raises on Redis errors (callers degrade).
    """
    if settings.EMBEDDED:
        return
    index = RedisIndex()
    token = index.claim_rebuild(ttl_ms=REBUILD_LOCK_MS)
    if token is None:
        return
    try:
        if index.is_ready():  # another process rebuilt it since this read found it cold
            index.release_rebuild(token)
            return
        small = (
            User.objects.rankable()[: INLINE_REBUILD_MAX_USERS + 1].count()
            <= INLINE_REBUILD_MAX_USERS
        )
    except Exception:
        index.release_rebuild(token)
        raise
    logger.warning(
        "leaderboard index cold (never built or Redis lost its data): reads answer from "
        "PostgreSQL while it is rebuilt %s",
        "now" if small else "in the background",
    )
    if small:
        _rebuild_and_release(index, token)
        return
    threading.Thread(
        target=_rebuild_in_background,
        args=(index, token),
        name="leaderboard-rebuild",
        daemon=True,
    ).start()


def _rebuild_and_release(index: RedisIndex, token: str) -> None:
    try:
        _rebuild_holding_lock(index, token)
    except Exception:
        metrics.backing_service_errors.labels("redis").inc()
        logger.exception("leaderboard index rebuild failed; the next cold read retries")
    finally:
        try:
            index.release_rebuild(token)
        except Exception:
            logger.warning("could not release the rebuild lock; it expires by itself")


def _rebuild_in_background(index: RedisIndex, token: str) -> None:
    try:
        _rebuild_and_release(index, token)
    finally:
        connections.close_all()  # this thread's connections only


def leaderboard_reconcile(*, batch: int = 5000) -> int:
    """Replay ledger entries past the stored watermark into the index; rebuild it (here,
    in the caller's process) if it is cold.

    Converges after a process died between a commit and its index update. Idempotent:
    index writes ignore anything older than what they hold.
    """
    if settings.EMBEDDED:
        return 0
    index = RedisIndex()
    if not index.is_ready():
        token = index.claim_rebuild(ttl_ms=REBUILD_LOCK_MS)
        if token is not None:
            if index.is_ready():
                index.release_rebuild(token)
            else:
                _rebuild_and_release(index, token)
        return 0
    replayed = _replay(index, batch=batch)
    bus.mark_dirty()
    return replayed


def _replay(index: RedisIndex, *, batch: int) -> int:
    """Apply the current state of every user with ledger entries past the watermark;
    move the watermark past those old enough to have committed."""
    cache = caches["strict"]
    watermark = int(cache.get(WATERMARK_KEY) or 0)
    entries = list(
        ScoreEntry.objects.filter(id__gt=watermark)
        .order_by("id")
        .values_list("id", "user_id", "created_at")[:batch]
    )
    if not entries:
        return 0
    # Ids are taken before commit, so a lower id can still commit after a higher one is
    # visible: the watermark passes only entries old enough to have committed.
    settled = timezone.now() - timedelta(seconds=RECONCILE_SETTLE_SECONDS)
    latest = {user_id: entry_id for entry_id, user_id, _created in entries}
    users = User.objects.in_bulk(list(latest))
    last = dict(
        ScoreEntry.objects.filter(user_id__in=list(latest))
        .values("user_id")
        .annotate(m=Max("id"))
        .values_list("user_id", "m")
    )
    for user_id, entry_id in latest.items():
        if user_id in users:
            index_apply_user(index, users[user_id], max(entry_id, last.get(user_id) or 0))
    old_enough = [entry_id for entry_id, _user, created in entries if created < settled]
    if old_enough:
        cache.set(WATERMARK_KEY, max(old_enough), timeout=None)
    return len(latest)
