"""Accounts: registration, logins (sessions) and their refresh tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.errors import (
    EMAIL_TAKEN,
    USERNAME_TAKEN,
    AccountTakenError,
    CredentialsInvalidError,
    SessionRevokedError,
    UserBannedError,
)
from accounts.models import Session, User
from accounts.throttle import login_failure_record, login_throttle_check
from accounts.tokens import PlayerRefreshToken, refresh_token_verify
from core.errors import NotFoundError

SESSION_CLAIM = "sid"


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str


def _constraint_of(exc: IntegrityError) -> str:
    """The violated constraint's name (PostgreSQL), or SQLite's message, which names the
    column or the index ("UNIQUE constraint failed: index 'user_email_ci_unique'")."""
    diag = getattr(exc.__cause__, "diag", None)
    return getattr(diag, "constraint_name", None) or str(exc)


def user_register(*, username: str, email: str, password: str) -> User:
    """Create a player account (input already validated by RegisterSerializer).

    The database's unique constraints (username key, lower(email)) decide between
    concurrent registrations of one name: the losers get AccountTakenError, a 400.
    """
    user = User(username=username, email=email.lower())
    user.set_password(password)
    try:
        with transaction.atomic():
            user.save()
    except IntegrityError as exc:
        if "email" in _constraint_of(exc):
            raise AccountTakenError(field="email", message=EMAIL_TAKEN) from exc
        raise AccountTakenError(field="username", message=USERNAME_TAKEN) from exc
    return user


def _issue(*, user: User, session: Session | None, ip: str | None, user_agent: str) -> TokenPair:
    refresh = PlayerRefreshToken.for_user(user)
    expires_at = datetime.fromtimestamp(refresh["exp"], tz=UTC)
    if session is None:
        session = Session.objects.create(
            user=user,
            refresh_jti=refresh["jti"],
            expires_at=expires_at,
            ip=ip,
            user_agent=user_agent,
        )
    else:
        session.refresh_jti = refresh["jti"]
        session.expires_at = expires_at
        session.ip = ip or session.ip
        session.user_agent = user_agent or session.user_agent
        session.save(
            update_fields=["refresh_jti", "expires_at", "ip", "user_agent", "last_used_at"]
        )
    refresh[SESSION_CLAIM] = str(session.pk)
    access = refresh.access_token
    access[SESSION_CLAIM] = str(session.pk)
    return TokenPair(access=str(access), refresh=str(refresh))


def session_login(*, username: str, password: str, ip: str | None, user_agent: str) -> TokenPair:
    """Check credentials and open a session. Only failures count toward the login limits
    (accounts.throttle), which the admin's login shares."""
    login_throttle_check(username=username, ip=ip)
    user = authenticate(username=username, password=password)
    if user is None:
        login_failure_record(username=username, ip=ip)
        raise CredentialsInvalidError()
    if user.is_banned:
        raise UserBannedError()
    return _issue(user=user, session=None, ip=ip, user_agent=user_agent)


def session_refresh(*, refresh: str, ip: str | None, user_agent: str) -> TokenPair:
    """Rotate: the presented refresh token stops working and a new pair is issued.

    Locks the session row, so of two concurrent refreshes with one token only one wins.
    """
    token = refresh_token_verify(refresh)
    with transaction.atomic():
        session = (
            Session.objects.select_for_update()
            .select_related("user")
            .filter(pk=token.get(SESSION_CLAIM), refresh_jti=token["jti"])
            .active()
            .first()
        )
        if session is None or not session.user.is_active:
            raise SessionRevokedError()
        if session.user.is_banned:
            raise UserBannedError()
        token.blacklist()
        return _issue(user=session.user, session=session, ip=ip, user_agent=user_agent)


def session_logout(*, refresh: str) -> None:
    """End the session the refresh token belongs to."""
    token = refresh_token_verify(refresh)
    with transaction.atomic():
        updated = (
            Session.objects.filter(pk=token.get(SESSION_CLAIM), refresh_jti=token["jti"])
            .active()
            .update(revoked_at=timezone.now())
        )
        token.blacklist()
    if not updated:
        raise SessionRevokedError()


def session_revoke(*, user: User, session_id: str) -> int:
    """Revoke one of the user's sessions, or every one with `session_id == "all"`."""
    sessions = Session.objects.filter(user=user).active()
    if session_id != "all":
        try:
            sessions = sessions.filter(pk=uuid.UUID(session_id))
        except ValueError as exc:
            raise NotFoundError("Session not found.") from exc
    revoked = sessions.update(revoked_at=timezone.now())
    if session_id != "all" and not revoked:
        raise NotFoundError("Session not found.")
    return revoked
