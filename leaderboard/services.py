"""Reactions to committed score changes, and the index's maintenance. Never writes scores."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import caches
from django.db.models import Max
from django.utils import timezone

from accounts.models import User
from leaderboard import broadcast
from leaderboard.index import RedisIndex
from leaderboard.selectors import leaderboard_rank_and_score
from scoreboard import metrics
from scoreboard.models import ScoreEntry

logger = logging.getLogger(__name__)

WATERMARK_KEY = "lb:watermark"
RECONCILE_SETTLE_SECONDS = 10


def _apply(index: RedisIndex, user: User, entry_id: int) -> None:
    index.apply(
        user_id=user.pk,
        username=user.username,
        score=user.score,
        reached_at=user.score_reached_at,
        entry_id=entry_id,
        ranked=user.is_active and not user.is_banned,
    )


def leaderboard_score_changed(
    *,
    user_id: uuid.UUID,
    score: int,
    previous_score: int,
    reached_at: datetime,
    entry_id: int,
) -> None:
    """After commit of a ledger entry: update the index, mark the board, tell the user.

    A failure here loses nothing: the reconciler replays the ledger into the index.
    """
    user = User.objects.filter(pk=user_id).only("id", "username", "is_active", "is_banned").first()
    if user is None:
        return
    if not settings.EMBEDDED:
        try:
            RedisIndex().apply(
                user_id=user.pk,
                username=user.username,
                score=score,
                reached_at=reached_at,
                entry_id=entry_id,
                ranked=user.is_active and not user.is_banned,
            )
        except Exception:
            metrics.backing_service_errors.labels("redis").inc()
            logger.warning("index update for %s failed; left to the reconciler", user_id)
    broadcast.mark_dirty()
    found = leaderboard_rank_and_score(user_id=user.pk)
    _send_to_user(
        user.pk, {"type": "me.update", "score": score, "rank": found[0] if found else None}
    )


def _send_to_user(user_id: uuid.UUID, message: dict) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(broadcast.user_group(user_id), message)
    except Exception:
        metrics.backing_service_errors.labels("channel_layer").inc()
        logger.warning("could not send me.update to %s", user_id)


def leaderboard_user_changed(*, user: User) -> None:
    """A user was banned, unbanned, renamed or deactivated: re-place them on the board."""
    if not settings.EMBEDDED:
        last = ScoreEntry.objects.filter(user=user).aggregate(m=Max("id"))["m"] or 0
        _apply(RedisIndex(), user, last)
    broadcast.mark_dirty()


def leaderboard_rebuild() -> int:
    """Rebuild the index from PostgreSQL; returns the number of ranked users."""
    if settings.EMBEDDED:
        return User.objects.rankable().count()
    last_entry = ScoreEntry.objects.aggregate(m=Max("id"))["m"] or 0
    rows = [
        (row["id"], row["username"], row["score"], row["score_reached_at"], row["last"] or 0)
        for row in User.objects.ranked()
        .annotate(last=Max("score_entries__id"))
        .values("id", "username", "score", "score_reached_at", "last")
    ]
    RedisIndex().replace(rows)
    caches["strict"].set(WATERMARK_KEY, last_entry, timeout=None)
    broadcast.mark_dirty()
    return len(rows)


def leaderboard_reconcile(*, batch: int = 5000) -> int:
    """Replay ledger entries past the stored watermark into the index.

    Converges after a process died between a commit and its index update. Idempotent:
    index writes ignore anything older than what they hold.
    """
    if settings.EMBEDDED:
        return 0
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
    index = RedisIndex()
    latest = {user_id: entry_id for entry_id, user_id, _created in entries}
    users = User.objects.in_bulk(list(latest))
    for user_id, entry_id in latest.items():
        if user_id in users:
            _apply(index, users[user_id], max(entry_id, _last_entry(user_id)))
    old_enough = [entry_id for entry_id, _user, created in entries if created < settled]
    if old_enough:
        cache.set(WATERMARK_KEY, max(old_enough), timeout=None)
    broadcast.mark_dirty()
    return len(latest)


def _last_entry(user_id: uuid.UUID) -> int:
    return ScoreEntry.objects.filter(user_id=user_id).aggregate(m=Max("id"))["m"] or 0
