from __future__ import annotations

import uuid

from django.contrib.auth.models import AbstractUser, UserManager
from django.db import models
from django.utils import timezone


class UserQuerySet(models.QuerySet["User"]):
    def rankable(self) -> UserQuerySet:
        """Users who appear on the board: active, not banned, and with points."""
        return self.filter(is_active=True, is_banned=False, score__gt=0)

    def ranked(self) -> UserQuerySet:
        """Board order: higher score first; on a tie, who reached the score first."""
        return self.rankable().order_by("-score", "score_reached_at", "id")


class ScoreboardUserManager(UserManager.from_queryset(UserQuerySet)):  # type: ignore[misc]
    pass


class User(AbstractUser):
    """A player. `score` changes only through the ledger (`scoreboard.services`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField("email address", unique=True)
    score = models.BigIntegerField(default=0, editable=False)
    # When the current score was reached: the tie-break between equal scores.
    score_reached_at = models.DateTimeField(default=timezone.now, editable=False)
    is_banned = models.BooleanField(default=False)
    banned_at = models.DateTimeField(null=True, blank=True)

    objects = ScoreboardUserManager()

    class Meta:
        indexes = [
            models.Index(
                fields=["-score", "score_reached_at", "id"],
                name="user_board_order",
                condition=models.Q(is_active=True, is_banned=False, score__gt=0),
            ),
            # The accounts that may not act (accounts.state rebuilds its Redis copy).
            models.Index(
                fields=["id"],
                name="user_blocked",
                condition=models.Q(is_banned=True) | models.Q(is_active=False),
            ),
        ]

    def __str__(self) -> str:
        return self.username


class SessionQuerySet(models.QuerySet["Session"]):
    def active(self) -> SessionQuerySet:
        return self.filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


class Session(models.Model):
    """One login: a chain of refresh tokens that survives rotation until revoked or expired.

    `refresh_jti` is the one refresh token of the chain that may still be used.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="sessions")
    refresh_jti = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True, default="")

    objects = SessionQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["user", "-created_at"], name="session_user_recent")]

    def __str__(self) -> str:
        return f"session {self.id} of {self.user_id}"
