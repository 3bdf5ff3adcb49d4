"""Reactions to committed score changes. Never writes scores."""

from __future__ import annotations

import uuid
from datetime import datetime


def leaderboard_score_changed(
    *,
    user_id: uuid.UUID,
    score: int,
    previous_score: int,
    reached_at: datetime,
    entry_id: int,
) -> None:
    """Called after commit of a ledger entry. Database ranking needs no index update."""
