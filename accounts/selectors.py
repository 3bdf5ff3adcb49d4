from __future__ import annotations

from typing import Any

from accounts.models import Session, User
from leaderboard.selectors import leaderboard_rank_of


def user_profile(*, user: User) -> dict[str, Any]:
    """The /me payload: who the user is, their score and rank."""
    return {
        "id": user.pk,
        "username": user.username,
        "score": user.score,
        "rank": leaderboard_rank_of(user_id=user.pk),
        "dateJoined": user.date_joined,
    }


def sessions_active(*, user: User) -> list[Session]:
    return list(Session.objects.filter(user=user).active().order_by("-created_at"))
