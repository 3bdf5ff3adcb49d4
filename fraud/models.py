"""What the fraud rules decided, what reviewers did about it, and each user's standing."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models import User


def _username(user: User | None) -> str:
    return user.get_username() if user is not None else "a deleted user"


def _when(at: datetime | None) -> str:
    """A time as a reviewer reads it: local, to the second."""
    return f"{timezone.localtime(at):%Y-%m-%d %H:%M:%S}" if at is not None else "not yet saved"


class AuditEvent(models.Model):
    """The audit trail: every completion decision (written by Celery), every act of staff,
    with who did it, and every admin login and login lockout (fraud.logins).
    Append-only: admin can neither edit nor delete it."""

    class Kind(models.TextChoices):
        COMPLETION_ACCEPTED = "completion.accepted", "Completion accepted"
        COMPLETION_BLOCKED = "completion.blocked", "Completion blocked"
        COMPLETION_REVERSED = "completion.reversed", "Completion reversed"
        USER_BANNED = "user.banned", "User banned"
        USER_UNBANNED = "user.unbanned", "User unbanned"
        FLAG_REVIEWED = "fraud.flag_reviewed", "Fraud log reviewed"
        PROFILE_CLEARED = "fraud.profile_cleared", "Risk profile cleared"
        PROFILE_WATCHED = "fraud.profile_watched", "User put on watch"
        USER_ESCALATED = "fraud.user_escalated", "User escalated to review"
        ADMIN_LOGIN_SUCCEEDED = "admin.login_succeeded", "Admin login succeeded"
        ADMIN_LOGIN_FAILED = "admin.login_failed", "Admin login failed"
        ADMIN_LOGIN_REFUSED = "admin.login_refused", "Admin login refused (not staff)"
        ADMIN_LOGIN_THROTTLED = "admin.login_throttled", "Admin login throttled"
        LOGIN_LOCKED_OUT = "auth.login_locked_out", "Login locked out"
        BOARD_SAVED = "board.saved", "Board created or changed"
        SEASON_ENDED = "board.season_ended", "Season ended early"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    completion_id = models.UUIDField(null=True, blank=True, db_index=True)
    risk_score = models.FloatField(default=0.0)
    payload = models.JSONField(default=dict)
    # Makes a task that is delivered twice write its record once ("completion:<id>").
    event_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        actor = self.payload.get("actor") if isinstance(self.payload, dict) else None
        by = f" by {actor}" if actor else ""
        return f"{self.get_kind_display()}: {_username(self.user)}{by}, {_when(self.created_at)}"


class FraudLog(models.Model):
    """One fraud decision about a user: a flagged or blocked completion, or the outcome of
    a deeper review. Reviewers mark it reviewed; nothing else about it ever changes."""

    class Event(models.TextChoices):
        FLAGGED = "flagged", "Completion flagged"
        BLOCKED = "blocked", "Completion blocked"
        REVIEWED = "reviewed", "History reviewed"
        ESCALATED = "escalated", "Escalated to review"

    class Outcome(models.TextChoices):
        PENDING = "", "Pending"
        CLEARED = "cleared", "Cleared: no fraud"
        CONFIRMED = "confirmed", "Confirmed fraud"
        REVERSED = "reversed", "Completion reversed"
        BANNED = "banned", "User banned"

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="fraud_logs")
    # The completion decided on, by id: fraud sits below actions and knows its
    # completions only as ids (a refused completion has no row; its log has no id).
    completion_id = models.UUIDField(null=True, blank=True, db_index=True)
    event = models.CharField(max_length=16, choices=Event.choices)
    risk_score = models.FloatField()
    # {rule name: weighted contribution} of the rules that fired, and their reasons.
    rules = models.JSONField(default=dict)
    reasons = models.JSONField(default=dict)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    details = models.JSONField(default=dict)
    reviewed_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(
        max_length=16, choices=Outcome.choices, blank=True, default=Outcome.PENDING
    )
    # When the security team was told of it (blocks and escalations only).
    alerted_at = models.DateTimeField(null=True, blank=True)
    # Makes a decision recorded twice (a retried request or task) one row.
    event_key = models.CharField(max_length=120, null=True, blank=True, unique=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "-created_at"], name="fraudlog_user_recent"),
            models.Index(
                fields=["created_at"],
                name="fraudlog_unalerted",
                condition=models.Q(alerted_at__isnull=True, event__in=["blocked", "escalated"]),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(risk_score__gte=0, risk_score__lte=1),
                name="fraudlog_risk_in_unit_interval",
            ),
        ]

    def __str__(self) -> str:
        return (
            f"{self.get_event_display()}: {_username(self.user)}, risk {self.risk_score:.0%},"
            f" {_when(self.created_at)}"
        )


class RiskProfile(models.Model):
    """A user's standing with the fraud rules; made on their first flag or block."""

    class Status(models.TextChoices):
        CLEAR = "clear", "Clear"
        WATCH = "watch", "Watch"
        UNDER_REVIEW = "under_review", "Under review"

    user = models.OneToOneField(
        User, primary_key=True, on_delete=models.CASCADE, related_name="risk_profile"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CLEAR)
    # An exponential moving average of the risk of the user's flagged and blocked attempts
    # and reviews; decays when nothing new is seen.
    rolling_risk = models.FloatField(default=0.0)
    flags_count = models.PositiveIntegerField(default=0)
    blocks_count = models.PositiveIntegerField(default=0)
    last_flagged_at = models.DateTimeField(null=True, blank=True)
    last_reviewed_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [models.Index(fields=["status", "-rolling_risk"], name="riskprofile_status")]

    def __str__(self) -> str:
        return (
            f"{_username(self.user)}: {self.get_status_display()},"
            f" rolling risk {self.rolling_risk:.0%}"
        )


class ReviewUser(User):
    """The admins' view of a user on the review desk (same table as `accounts.User`)."""

    class Meta:
        proxy = True
        verbose_name = "user on the review desk"
        verbose_name_plural = "users on the review desk"
