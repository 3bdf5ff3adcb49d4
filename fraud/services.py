"""What staff do on the review desk: ban and unban, mark fraud logs reviewed, put a user
back to clear or on watch, and reverse a completion's points. Each act is a service
that audits itself with the admin's name and, where the desk asks for one, their note."""

from __future__ import annotations

import logging
import uuid

from django.db import transaction
from django.utils import timezone

from accounts.models import Session, User
from accounts.state import account_state_set, state_of
from fraud.models import AuditEvent, FraudLog, RiskProfile
from leaderboard.services import leaderboard_user_changed
from scoreboard.models import ScoreEntry
from scoreboard.services import AlreadyReversedError, ledger_reverse

logger = logging.getLogger(__name__)


def _actor(admin: User | None) -> str:
    return admin.get_username() if admin is not None else "system"


def user_set_banned(
    *,
    user: User,
    banned: bool,
    actor: str = "",
    reason: str = "",
    admin: User | None = None,
    note: str = "",
) -> bool:
    """Ban (off the board at once, writes refused, sessions ended) or unban a user.

    Returns False when the user already was in that state. Audited, with the reviewer's
    `note` when the review desk acts.
    """
    actor = actor or _actor(admin)
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk, is_banned=not banned).update(
            is_banned=banned, banned_at=timezone.now() if banned else None
        )
        if not changed:
            return False
        if banned:
            Session.objects.filter(user=user).active().update(revoked_at=timezone.now())
            FraudLog.objects.filter(user=user, reviewed_at__isnull=True).update(
                reviewed_at=timezone.now(), reviewed_by=admin, outcome=FraudLog.Outcome.BANNED
            )
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.USER_BANNED if banned else AuditEvent.Kind.USER_UNBANNED,
            user=user,
            payload={"actor": actor, "reason": reason, "note": note},
        )
        user.refresh_from_db()
        cause = f"{'ban' if banned else 'unban'} of {user.username} by {actor}"
        transaction.on_commit(lambda: leaderboard_user_changed(user=user, cause=cause), robust=True)
        transaction.on_commit(lambda: account_state_set(user.pk, state_of(user)), robust=True)
    return True


def fraud_log_review(
    *, log: FraudLog, admin: User, outcome: str = FraudLog.Outcome.CLEARED, note: str = ""
) -> bool:
    """Mark a fraud log reviewed with its outcome. False if it already was. Audited."""
    with transaction.atomic():
        done = FraudLog.objects.filter(pk=log.pk, reviewed_at__isnull=True).update(
            reviewed_at=timezone.now(), reviewed_by=admin, outcome=outcome
        )
        if not done:
            return False
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.FLAG_REVIEWED,
            user_id=log.user_id,
            completion_id=log.completion_id,
            risk_score=log.risk_score,
            payload={"actor": _actor(admin), "fraudLog": log.pk, "outcome": outcome, "note": note},
        )
    return True


def risk_profile_clear(*, user: User, admin: User, note: str = "") -> bool:
    """Put a user back to clear: status clear, rolling risk 0, open logs cleared. Audited."""
    with transaction.atomic():
        profile, _ = RiskProfile.objects.select_for_update().get_or_create(user=user)
        was = profile.status
        profile.status, profile.rolling_risk = RiskProfile.Status.CLEAR, 0.0
        profile.save(update_fields=["status", "rolling_risk", "updated_at"])
        FraudLog.objects.filter(user=user, reviewed_at__isnull=True).update(
            reviewed_at=timezone.now(), reviewed_by=admin, outcome=FraudLog.Outcome.CLEARED
        )
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.PROFILE_CLEARED,
            user=user,
            payload={"actor": _actor(admin), "previousStatus": was, "note": note},
        )
    return was != RiskProfile.Status.CLEAR


def risk_profile_watch(*, user: User, admin: User, note: str = "") -> bool:
    """Put a user on watch (a reviewer's doubt: the desk lists them with the flagged ones;
    rolling risk and open logs unchanged). False if they already were. Audited."""
    with transaction.atomic():
        profile, _ = RiskProfile.objects.select_for_update().get_or_create(user=user)
        was = profile.status
        if was == RiskProfile.Status.WATCH:
            return False
        profile.status = RiskProfile.Status.WATCH
        profile.save(update_fields=["status", "updated_at"])
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.PROFILE_WATCHED,
            user=user,
            payload={"actor": _actor(admin), "previousStatus": was, "note": note},
        )
    return True


def fraud_reverse_entry(
    *, completion_id: uuid.UUID, entry: ScoreEntry, admin: User, note: str = ""
) -> bool:
    """Take back a completion's points (its ledger `entry`) with a compensating ledger
    entry (the board updates after commit). False if it was reversed before. Audited."""
    try:
        with transaction.atomic():
            reversal = ledger_reverse(
                entry=entry, note=note or f"reversed by {_actor(admin)}"
            ).entry
            FraudLog.objects.filter(completion_id=completion_id, reviewed_at__isnull=True).update(
                reviewed_at=timezone.now(), reviewed_by=admin, outcome=FraudLog.Outcome.REVERSED
            )
            AuditEvent.objects.create(
                kind=AuditEvent.Kind.COMPLETION_REVERSED,
                user_id=entry.user_id,
                completion_id=completion_id,
                payload={
                    "actor": _actor(admin),
                    "delta": reversal.delta,
                    "scoreAfter": reversal.score_after,
                    "note": note,
                },
            )
    except AlreadyReversedError:
        return False
    return True
