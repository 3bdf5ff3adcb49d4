"""Reactions to committed score changes: the index, the board's wake-up, the user's
own update (the index's rebuild and repair are leaderboard/rebuild.py). Never writes
scores."""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db.models import Max

from accounts.models import User
from core import metrics
from core.redis_batch import redis_later
from leaderboard import bus, events
from leaderboard.closing import closed_periods_of_user, period_revise_later
from leaderboard.credits import Credit
from leaderboard.index import IndexColdError, RedisIndex
from leaderboard.models import Period, PeriodScore
from leaderboard.period_index import apply_many_queue, period_index, period_index_cold, period_label
from leaderboard.period_reads import period_rank_from_db
from leaderboard.rebuild import index_apply_user
from leaderboard.selectors import leaderboard_rank_and_score
from scoreboard.models import ScoreEntry
from scoreboard.services import LedgerChange, LedgerWrite

logger = logging.getLogger(__name__)


def leaderboard_ledger_changed(change: LedgerChange, write: LedgerWrite) -> None:
    """The ledger's subscriber (registered in `LeaderboardConfig.ready`): a committed entry.
    Its credits to periods already closing or closed are revised; the rest move with the
    global board in one script."""
    credits: list[Credit] = list(change.extras.get("boards") or [])
    for credit in credits:
        if credit.closed:
            period_revise_later(
                credit.period_id,
                cause=f"ledger entry {change.entry_id} ({change.score - change.previous_score:+d})",
            )
    held = [credit for credit in credits if not credit.closed]
    leaderboard_score_changed(
        user_id=change.user_id,
        score=change.score,
        previous_score=change.previous_score,
        reached_at=change.reached_at,
        entry_id=change.entry_id,
        username=change.username,
        ranked=change.ranked,
        on_rank=write.rank_heard,
        credits=held,
        on_boards=lambda boards: write.answer_heard("boards", boards),
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
    credits: Sequence[Credit] = (),
    on_boards: Callable[[list[BoardRank]], None] | None = None,
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
    tell_boards = on_boards or (lambda boards: None)
    if username is None or ranked is None:
        user = (
            User.objects.filter(pk=user_id).only("id", "username", "is_active", "is_banned").first()
        )
        if user is None:
            tell(None)
            return
        username, ranked = user.username, user.is_active and not user.is_banned
    if settings.EMBEDDED:
        boards = _boards_without_index(user_id, credits)
        tell_boards(boards)
        tell(_changed_without_index(user_id, score, boards))
        return
    if credits:
        _score_changed_on_boards(
            user_id=user_id,
            username=username,
            score=score,
            reached_at=reached_at,
            entry_id=entry_id,
            ranked=bool(ranked),
            credits=credits,
            tell=tell,
            tell_boards=tell_boards,
        )
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


class BoardRank(TypedDict):
    board: str
    period: str
    score: int
    rank: int | None


def _score_changed_on_boards(
    *,
    user_id: uuid.UUID,
    username: str,
    score: int,
    reached_at: datetime,
    entry_id: int,
    ranked: bool,
    credits: Sequence[Credit],
    tell: Callable[[int | None], None],
    tell_boards: Callable[[list[BoardRank]], None],
) -> None:
    """The global index and every credited period's, in one script of the request's
    after-commit round trip (`APPLY_MANY`): every board moves, or none does."""
    indexes = [(RedisIndex(), score, reached_at, "")] + [
        (period_index(c.period_id), c.score, c.reached_at, period_label(c.board, c.period_key))
        for c in credits
    ]
    answers: list[Callable[[Any], list[tuple[bool, int | None] | None]]] = []

    def queue(pipe: Any) -> None:
        answers.append(
            apply_many_queue(
                pipe,
                user_id=user_id,
                username=username,
                entry_id=entry_id,
                ranked=ranked,
                indexes=indexes,
                wake_channel=bus.dirty_channel(),
                me_channel=bus.me_channel(),
            )
        )

    def done(outcome: list[Any] | Exception) -> None:
        try:
            if isinstance(outcome, Exception):
                raise outcome
            found = answers[0](outcome[0])
        except Exception:
            metrics.backing_service_errors.labels("redis").inc()
            logger.warning("index update for %s failed; left to the reconciler", user_id)
            boards = _boards_without_index(user_id, credits)
            tell_boards(boards)
            tell(_changed_without_index(user_id, score, boards))
            return
        boards: list[BoardRank] = []
        for credit, result in zip(credits, found[1:], strict=True):
            if result is None:  # cold: kept for its rebuild, started now
                with contextlib.suppress(Exception):
                    period_index_cold(credit.period_id)
                rank = _period_rank_without_index(credit.period_id, user_id)
            else:
                rank = result[1]
            boards.append(
                {
                    "board": credit.board,
                    "period": credit.period_key,
                    "score": credit.score,
                    "rank": rank,
                }
            )
        tell_boards(boards)
        if found[0] is None:
            tell(_changed_without_index(user_id, score, boards))
        else:
            tell(found[0][1])

    redis_later(queue, done)


def _period_rank_without_index(period_id: int, user_id: uuid.UUID) -> int | None:
    found = period_rank_from_db(period_id, user_id=user_id)
    return found[0] if found else None


def _boards_without_index(user_id: uuid.UUID, credits: Sequence[Credit]) -> list[BoardRank]:
    return [
        {
            "board": c.board,
            "period": c.period_key,
            "score": c.score,
            "rank": _period_rank_without_index(c.period_id, user_id),
        }
        for c in credits
    ]


def _changed_without_index(
    user_id: uuid.UUID, score: int, boards: list[BoardRank] | None = None
) -> int | None:
    """The board marked, the rank from PostgreSQL and me.update sent, without the index."""
    bus.mark_dirty()
    found = leaderboard_rank_and_score(user_id=user_id)
    rank = found[0] if found else None
    _send_to_user(user_id, events.me_update(score, rank, list(boards) if boards else None))
    return rank


def _send_to_user(user_id: uuid.UUID, message: events.MeUpdateEvent) -> None:
    """`me.update` to the user's own sockets: one PUBLISH with Redis; the in-memory channel
    layer in the embedded default."""
    try:
        if not settings.EMBEDDED:
            bus.publish_me_update(
                user_id, score=message["score"], rank=message["rank"], boards=message.get("boards")
            )
            return
        layer = get_channel_layer()
        if layer is not None:
            async_to_sync(layer.group_send)(bus.user_group(user_id), message)
    except Exception:
        metrics.backing_service_errors.labels("channel_layer").inc()
        logger.warning("could not send me.update to %s", user_id)


def leaderboard_user_changed(*, user: User, cause: str = "") -> None:
    """A user was banned, unbanned, renamed or deactivated: re-place them on every board
    (the global one and each held period), and revise the closed periods they are in."""
    ranked = user.is_active and not user.is_banned
    if not settings.EMBEDDED:
        last = ScoreEntry.objects.filter(user=user).aggregate(m=Max("id"))["m"] or 0
        index_apply_user(RedisIndex(), user, last)
        held = PeriodScore.objects.filter(user=user).exclude(period__state=Period.State.CLOSED)
        for row in held.values("period_id", "score", "reached_at", "entry_id"):
            with contextlib.suppress(Exception):
                period_index(row["period_id"]).apply(
                    user_id=user.pk,
                    username=user.username,
                    score=row["score"],
                    reached_at=row["reached_at"],
                    entry_id=max(row["entry_id"], last),
                    ranked=ranked,
                )
    for period_id in closed_periods_of_user(user.pk):
        period_revise_later(
            period_id, cause=cause or f"{'unban' if ranked else 'ban'} of {user.username}"
        )
    bus.mark_dirty()
