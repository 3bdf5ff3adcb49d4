from __future__ import annotations

from accounts.models import Session, User


def sessions_active(*, user: User) -> list[Session]:
    return list(Session.objects.filter(user=user).active().order_by("-created_at"))
