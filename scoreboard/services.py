"""The score ledger: the one place a score changes."""

from __future__ import annotations

import logging
import uuid

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import User
from scoreboard.errors import ConflictError, NotFoundError
from scoreboard.models import ScoreEntry
from scoreboard.oncommit import after_commit

logger = logging.getLogger(__name__)


def _publish_score_changed(entry: ScoreEntry) -> None:
    # leaderboard reacts to committed changes only; imported here to keep it downstream.
    from leaderboard.services import leaderboard_score_changed

    after_commit(
        leaderboard_score_changed,
        user_id=entry.user_id,
        score=entry.score_after,
        previous_score=entry.score_before,
        reached_at=entry.created_at,
        entry_id=entry.pk,
    )


def ledger_award(
    *,
    user_id: uuid.UUID,
    delta: int,
    reason: str = ScoreEntry.Reason.COMPLETION,
    action_id: str = "",
    token_hash: str = "",
    ip: str | None = None,
    user_agent: str = "",
    reverses: ScoreEntry | None = None,
    note: str = "",
    locked_score: int | None = None,
) -> ScoreEntry:
    """Add `delta` to a user's score and record the entry, in the caller's transaction.

    Locks the user's row until the transaction ends, so `score_before`/`score_after` are
    exact under concurrent awards. A caller that already holds that lock in this
    transaction passes the score it read as `locked_score`. The leaderboard hears of it
    only after commit.
    """
    now = timezone.now()
    # No savepoint inside a caller's transaction: a failure here aborts it all anyway.
    with transaction.atomic(savepoint=False):
        # The row lock makes read-then-update exact; the F() update keeps it atomic anyway.
        before = locked_score
        if before is None:
            before = (
                User.objects.select_for_update().filter(pk=user_id).values_list("score", flat=True)
            ).first()
        if before is None:
            raise NotFoundError("User not found.")
        User.objects.filter(pk=user_id).update(score=F("score") + delta, score_reached_at=now)
        entry = ScoreEntry.objects.create(
            user_id=user_id,
            delta=delta,
            score_before=before,
            score_after=before + delta,
            reason=reason,
            action_id=action_id,
            token_hash=token_hash,
            ip=ip,
            user_agent=user_agent[:512],
            reverses=reverses,
            note=note[:255],
            created_at=now,
        )
        _publish_score_changed(entry)
    return entry


class AlreadyReversedError(ConflictError):
    code = "already_reversed"
    message = "This score entry has already been reversed."


def ledger_reverse(*, entry: ScoreEntry, note: str = "") -> ScoreEntry:
    """Append the compensating entry for `entry`; a second reversal of it is refused."""
    if entry.reason == ScoreEntry.Reason.REVERSAL:
        raise ConflictError("A reversal cannot itself be reversed.")
    if ScoreEntry.objects.filter(reverses=entry).exists():
        raise AlreadyReversedError()
    try:
        with transaction.atomic():
            return ledger_award(
                user_id=entry.user_id,
                delta=-entry.delta,
                reason=ScoreEntry.Reason.REVERSAL,
                action_id=entry.action_id,
                reverses=entry,
                note=note,
            )
    except IntegrityError as exc:  # a concurrent reversal won the unique `reverses` key
        raise AlreadyReversedError() from exc
