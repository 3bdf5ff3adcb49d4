from __future__ import annotations

from django.conf import settings
from django.db import models


class AuditEvent(models.Model):
    """The asynchronous audit trail: one row per completion decision, written by Celery."""

    class Kind(models.TextChoices):
        COMPLETION_ACCEPTED = "completion.accepted", "Completion accepted"
        COMPLETION_BLOCKED = "completion.blocked", "Completion blocked"
        USER_BANNED = "user.banned", "User banned"
        USER_UNBANNED = "user.unbanned", "User unbanned"

    kind = models.CharField(max_length=40, choices=Kind.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    completion_id = models.UUIDField(null=True, blank=True, db_index=True)
    risk_score = models.FloatField(default=0.0)
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.kind} {self.user_id}"
