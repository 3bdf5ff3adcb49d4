"""Reads over the ledger."""

from __future__ import annotations

import uuid

from django.db.models import Sum

from scoreboard.models import ScoreEntry


def ledger_sum(*, user_id: uuid.UUID) -> int:
    """The sum of a user's ledger entries: what their score must equal."""
    return ScoreEntry.objects.filter(user_id=user_id).aggregate(total=Sum("delta"))["total"] or 0
