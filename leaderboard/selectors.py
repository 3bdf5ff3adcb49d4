"""Ranking reads."""

from __future__ import annotations

import uuid

from django.db.models import Q

from accounts.models import User


def leaderboard_rank_of(*, user_id: uuid.UUID) -> int | None:
    """1-based rank of a user, or None when the user is not ranked (banned, inactive)."""
    row = (
        User.objects.rankable().filter(pk=user_id).values("score", "score_reached_at", "id").first()
    )
    if row is None:
        return None
    ahead = (
        User.objects.rankable()
        .filter(
            Q(score__gt=row["score"])
            | Q(score=row["score"], score_reached_at__lt=row["score_reached_at"])
            | Q(score=row["score"], score_reached_at=row["score_reached_at"], id__lt=row["id"])
        )
        .count()
    )
    return ahead + 1
