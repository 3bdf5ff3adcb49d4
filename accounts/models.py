from __future__ import annotations

import uuid
from typing import Any, ClassVar

from django.contrib.auth.models import AbstractUser, UserManager
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.names import USERNAME_KEY_MAX_LENGTH, username_key


class UserQuerySet(models.QuerySet["User"]):
    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> list[User]:  # type: ignore[override]
        """Keys the names as save() does (bulk_create calls no save())."""
        users: list[User] = list(objs)
        for user in users:
            user.username_key = username_key(user.username)
        return list(super().bulk_create(users, *args, **kwargs))  # type: ignore[arg-type]

    def rankable(self) -> UserQuerySet:
        """Users who appear on the board: active, not banned, and with points."""
        return self.filter(is_active=True, is_banned=False, score__gt=0)

    def ranked(self) -> UserQuerySet:
        """Board order: higher score first; on a tie, who reached the score first."""
        return self.rankable().order_by("-score", "score_reached_at", "id")


class ScoreboardUserManager(UserManager.from_queryset(UserQuerySet)):  # type: ignore[misc]
    def get_by_natural_key(self, username: str | None) -> User:
        """The account whose name is `username` as names are compared (accounts.names):
        every login (the API's and the admin's, through ModelBackend) finds `ALICE` or
        a full-width `alice` as alice. Unambiguous: the key is unique."""
        return self.get(username_key=username_key(username or ""))


class User(AbstractUser):
    """A player. `score` changes only through the ledger (`scoreboard.services`)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Unique case-insensitively: the `user_email_ci_unique` index on lower(email).
    email = models.EmailField("email address")
    # The username as names are compared (accounts.names.username_key), kept by save().
    username_key = models.CharField(max_length=255, editable=False)
    score = models.BigIntegerField(default=0, editable=False)
    # When the current score was reached: the tie-break between equal scores.
    score_reached_at = models.DateTimeField(default=timezone.now, editable=False)
    is_banned = models.BooleanField(default=False)
    banned_at = models.DateTimeField(null=True, blank=True)

    objects: ClassVar[ScoreboardUserManager] = ScoreboardUserManager()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["username_key"], name="user_username_key_unique"),
            # A row written around save() (raw SQL) would otherwise pass with no key.
            models.CheckConstraint(
                condition=~models.Q(username_key=""), name="user_username_key_set"
            ),
            models.UniqueConstraint(
                Lower("email"),
                name="user_email_ci_unique",
                violation_error_message="This email is already registered.",
            ),
        ]
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

    def clean(self) -> None:
        """Also refuse, as a form error, a name another account has once compared."""
        super().clean()
        if not self.username:
            return  # the field's own error says so
        key = username_key(self.username)
        if len(key) > USERNAME_KEY_MAX_LENGTH:  # NFKC and folding can lengthen a name
            raise ValidationError({"username": "This username is too long once normalised."})
        if User.objects.filter(username_key=key).exclude(pk=self.pk).exists():
            raise ValidationError({"username": "A user with that username already exists."})

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.username_key = username_key(self.username)
        update_fields = kwargs.get("update_fields")
        if update_fields is not None and "username" in update_fields:
            kwargs["update_fields"] = {*update_fields, "username_key"}
        super().save(*args, **kwargs)


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
