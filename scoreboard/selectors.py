"""Reads over the ledger."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Sum

from accounts.models import User
from scoreboard.models import ScoreEntry


def ledger_sum(*, user_id: uuid.UUID) -> int:
    """The sum of a user's ledger entries: what their score must equal."""
    return ScoreEntry.objects.filter(user_id=user_id).aggregate(total=Sum("delta"))["total"] or 0


def completions_accepted_count(*, since: datetime) -> int:
    """How many completions the ledger credited since `since` (reversals not deducted)."""
    return ScoreEntry.objects.filter(
        reason=ScoreEntry.Reason.COMPLETION, created_at__gte=since
    ).count()


@dataclass(frozen=True)
class TotalMismatch:
    """A user whose stored total is not the sum of their ledger entries."""

    user_id: uuid.UUID
    username: str
    score: int
    ledger_total: int


def ledger_total_mismatches() -> list[TotalMismatch]:
    """Every user whose `score` differs from their ledger sum (one aggregate query)."""
    ledger = dict(
        ScoreEntry.objects.values("user_id")
        .annotate(total=Sum("delta"))
        .values_list("user_id", "total")
    )
    return [
        TotalMismatch(user_id=uid, username=name, score=score, ledger_total=ledger.get(uid, 0))
        for uid, name, score in User.objects.values_list("id", "username", "score")
        if score != ledger.get(uid, 0)
    ]
