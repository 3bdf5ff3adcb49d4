from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ScoreEntry(models.Model):
    """One change of one user's score. Append-only: a reversal is a new, compensating entry.

    Invariant: a user's `score` equals the sum of their entries' `delta`.
    """

    class Reason(models.TextChoices):
        COMPLETION = "completion", "Completion"
        REVERSAL = "reversal", "Reversal"
        ADJUSTMENT = "adjustment", "Adjustment"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="score_entries"
    )
    delta = models.BigIntegerField()
    score_before = models.BigIntegerField()
    score_after = models.BigIntegerField()
    reason = models.CharField(max_length=16, choices=Reason.choices)
    action_id = models.CharField(max_length=64, blank=True, default="")
    token_hash = models.CharField(max_length=64, blank=True, default="")
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")
    reverses = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="reversed_by"
    )
    note = models.CharField(max_length=255, blank=True, default="")
    # Equal to the user's `score_reached_at` for the score this entry produced.
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name_plural = "score entries"
        indexes = [models.Index(fields=["user", "-created_at"], name="entry_user_recent")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score_after=models.F("score_before") + models.F("delta")),
                name="entry_after_is_before_plus_delta",
            ),
            models.CheckConstraint(condition=~models.Q(delta=0), name="entry_delta_nonzero"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.delta:+d} -> {self.score_after}"
