"""Reactions to committed score changes: the index, the board's wake-up, the user's
own update (the index's rebuild and repair are leaderboard/rebuild.py). Never writes
scores."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import Max

from accounts.models import User
from core import metrics
from core.redis_batch import redis_later
from leaderboard import bus, events
from leaderboard.index import IndexColdError, RedisIndex
from leaderboard.rebuild import index_apply_user
from leaderboard.selectors import leaderboard_rank_and_score
from scoreboard.models import ScoreEntry
from scoreboard.services import LedgerChange

logger = logging.getLogger(__name__)


def leaderboard_ledger_changed(
    change: LedgerChange, tell_rank: Callable[[int | None], None]
) -> None:
    """The ledger's subscriber (registered in `LeaderboardConfig.ready`): a committed entry."""
    leaderboard_score_changed(
        user_id=change.user_id,
        score=change.score,
        previous_score=change.previous_score,
        reached_at=change.reached_at,
        entry_id=change.entry_id,
        username=change.username,
        ranked=change.ranked,
        on_rank=tell_rank,
    )


def leaderboard_score_changed(
    *,
    user_id: uuid.UUID,
    score: int,
    previous_score: int,
    reached_at: datetime,
    entry_id: int,
    username: str | None = None,
    ranked: bool | None = None,
    on_rank: Callable[[int | None], None] | None = None,
) -> None:
    """After commit of a ledger entry: update the index, mark the board, tell the user.
    `on_rank` hears the user's new rank (None when not on the board).

    `username` and `ranked` (active and not banned), when the writer read them under the
    user's row lock, save a query. With Redis it is one command of the request's
    after-commit round trip (`core.redis_batch`): the index write, the broadcasters'
    wake-up and me.update; `on_rank` is called when that round trip is done. A failure
    here loses nothing: the reconciler replays the ledger into the index.
    """
    tell = on_rank or (lambda rank: None)
    if username is None or ranked is None:
        user = (
            User.objects.filter(pk=user_id).only("id", "username", "is_active", "is_banned").first()
        )
        if user is None:
            tell(None)
            return
        username, ranked = user.username, user.is_active and not user.is_banned
    if settings.EMBEDDED:
        tell(_changed_without_index(user_id, score))
        return
    change = {
        "user_id": user_id,
        "username": username,
        "score": score,
        "reached_at": reached_at,
        "entry_id": entry_id,
        "ranked": ranked,
        "wake_channel": bus.dirty_channel(),
        "me_channel": bus.me_channel(),
    }
    answers: list[Callable[[Any], tuple[bool, int | None]]] = []

    def queue(pipe: Any) -> None:
        answers.append(RedisIndex().apply_queue(pipe, **change))

    def done(outcome: list[Any] | Exception) -> None:
        try:
            if isinstance(outcome, Exception):
                raise outcome
            tell(answers[0](outcome[0])[1])
            return
        except IndexColdError:
            pass  # kept for the rebuild; the rank comes from PostgreSQL below
        except Exception:
            metrics.backing_service_errors.labels("redis").inc()
            logger.warning("index update for %s failed; left to the reconciler", user_id)
        tell(_changed_without_index(user_id, score))

    redis_later(queue, done)


def _changed_without_index(user_id: uuid.UUID, score: int) -> int | None:
    """The board marked, the rank from PostgreSQL and me.update sent, without the index."""
    bus.mark_dirty()
    found = leaderboard_rank_and_score(user_id=user_id)
    rank = found[0] if found else None
    _send_to_user(user_id, events.me_update(score, rank))
    return rank


def _send_to_user(user_id: uuid.UUID, message: events.MeUpdateEvent) -> None:
    """`me.update` to the user's own sockets: one PUBLISH with Redis; the in-memory channel
    layer in the embedded default."""
    try:
        if not settings.EMBEDDED:
            bus.publish_me_update(user_id, score=message["score"], rank=message["rank"])
            return
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(bus.user_group(user_id), message)
    except Exception:
        metrics.backing_service_errors.labels("channel_layer").inc()
        logger.warning("could not send me.update to %s", user_id)


def leaderboard_user_changed(*, user: User) -> None:
    """A user was banned, unbanned, renamed or deactivated: re-place them on the board."""
    if not settings.EMBEDDED:
        last = ScoreEntry.objects.filter(user=user).aggregate(m=Max("id"))["m"] or 0
        index_apply_user(RedisIndex(), user, last)
    bus.mark_dirty()
