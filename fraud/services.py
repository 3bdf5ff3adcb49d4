"""Fraud assessment of a completion before it is accepted.

The rule set is the fraud review's to fill (SPEC "Fraud detection and review"); the
interface is fixed here: a risk score in [0, 1], each rule's contribution, and the flag
and block decisions from the thresholds in settings.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from fraud.models import AuditEvent


@dataclass(frozen=True)
class RiskAssessment:
    score: float
    rules: dict[str, float] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.score >= settings.FRAUD_FLAG_THRESHOLD

    @property
    def blocked(self) -> bool:
        return self.score >= settings.FRAUD_BLOCK_THRESHOLD


def fraud_assess(
    *,
    user_id: uuid.UUID,
    action_id: str,
    ip: str | None,
    user_agent: str,
    client_timestamp: datetime | None,
    now: datetime,
) -> RiskAssessment:
    """Score a completion before its transaction. No rules are active yet: every one passes."""
    return RiskAssessment(score=0.0, rules={})


def user_set_banned(*, user: User, banned: bool, actor: str = "", reason: str = "") -> bool:
    """Ban (off the board at once, writes refused, sessions ended) or unban a user.

    Returns False when the user already was in that state. Audited.
    """
    from accounts.models import Session
    from leaderboard.services import leaderboard_user_changed

    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk, is_banned=not banned).update(
            is_banned=banned, banned_at=timezone.now() if banned else None
        )
        if not changed:
            return False
        if banned:
            Session.objects.filter(user=user).active().update(revoked_at=timezone.now())
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.USER_BANNED if banned else AuditEvent.Kind.USER_UNBANNED,
            user=user,
            payload={"actor": actor, "reason": reason},
        )
        user.refresh_from_db()
        transaction.on_commit(lambda: leaderboard_user_changed(user=user), robust=True)
    return True
