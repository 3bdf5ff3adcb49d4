from __future__ import annotations

import uuid

from django.conf import settings
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models

slug_validator = RegexValidator(
    r"^[a-z0-9][a-z0-9_-]{0,63}$", "Use lowercase letters, digits, - and _."
)


class ActionTypeQuerySet(models.QuerySet["ActionType"]):
    def active(self) -> ActionTypeQuerySet:
        return self.filter(active=True)


class ActionType(models.Model):
    """Something a user can complete for points; defined by staff."""

    id = models.SlugField(primary_key=True, max_length=64, validators=[slug_validator])
    name = models.CharField(max_length=120)
    reward = models.PositiveIntegerField(validators=[MinValueValidator(1)])
    cooldown_seconds = models.PositiveIntegerField(default=0)
    min_duration_seconds = models.PositiveIntegerField(default=0)
    daily_cap = models.PositiveIntegerField(null=True, blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ActionTypeQuerySet.as_manager()

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(reward__gte=1), name="action_reward_positive"
            ),
            models.CheckConstraint(
                condition=models.Q(daily_cap__isnull=True) | models.Q(daily_cap__gte=1),
                name="action_daily_cap_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.id})"


class Completion(models.Model):
    """An accepted completion of an action. Its unique `nonce` is the action token's
    single use: a replay fails on this insert, even under a race."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="completions"
    )
    action = models.ForeignKey(ActionType, on_delete=models.PROTECT, related_name="completions")
    nonce = models.CharField(max_length=64, unique=True)
    score_entry = models.OneToOneField(
        "scoreboard.ScoreEntry", on_delete=models.PROTECT, related_name="completion"
    )
    delta = models.BigIntegerField()
    started_at = models.DateTimeField()
    client_timestamp = models.DateTimeField(null=True, blank=True)
    risk_score = models.FloatField(default=0.0)
    flagged = models.BooleanField(default=False)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [
            models.Index(fields=["user", "action", "-created_at"], name="completion_user_action"),
            models.Index(fields=["user", "-created_at"], name="completion_user_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.action_id} {self.created_at:%Y-%m-%d %H:%M:%S}"


class IdempotencyRecord(models.Model):
    """The first response to a request with an Idempotency-Key, replayed for retries, and
    the completion that request stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    request_hash = models.CharField(max_length=64)
    response_status = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    # Written in the completion's own transaction (the foreign key is checked at commit):
    # a retry whose first response was never stored still learns the outcome from it.
    completion = models.OneToOneField(
        Completion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="idempotency_record",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_user_key"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.key}"


class AuditBackfillCursor(models.Model):
    """How far the completion audit backfill has seen every completion with its record:
    the next run scans from here (less an overlap for late commits), not all history."""

    name = models.CharField(primary_key=True, max_length=64)
    position = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} at {self.position:%Y-%m-%d %H:%M:%S}"
