"""Reads over the ledger."""

from __future__ import annotations

import uuid
from datetime import datetime

from django.db.models import Sum

from scoreboard.models import ScoreEntry


def ledger_sum(*, user_id: uuid.UUID) -> int:
    """The sum of a user's ledger entries: what their score must equal."""
    return ScoreEntry.objects.filter(user_id=user_id).aggregate(total=Sum("delta"))["total"] or 0


def completions_accepted_count(*, since: datetime) -> int:
    """How many completions the ledger credited since `since` (reversals not deducted)."""
    return ScoreEntry.objects.filter(
        reason=ScoreEntry.Reason.COMPLETION, created_at__gte=since
    ).count()
