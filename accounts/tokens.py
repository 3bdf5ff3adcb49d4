"""Token verification shared by REST authentication and the WebSocket middleware."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.errors import TokenExpiredError, TokenInvalidError

if TYPE_CHECKING:
    from accounts.models import User

USERNAME_CLAIM = "username"
JOINED_CLAIM = "joined"


def access_token_verify(raw: str) -> AccessToken:
    """Signature (HS256 only), expiry, audience and issuer; raises token_expired/invalid."""
    try:
        return AccessToken(raw)
    except ExpiredTokenError as exc:
        raise TokenExpiredError() from exc
    except TokenError as exc:
        raise TokenInvalidError() from exc


def refresh_token_verify(raw: str) -> RefreshToken:
    """A refresh token's signature, expiry and claims, and that it is not blacklisted."""
    try:
        return RefreshToken(raw)
    except ExpiredTokenError as exc:
        raise TokenExpiredError("The refresh token has expired; log in again.") from exc
    except TokenError as exc:
        raise TokenInvalidError("The refresh token is invalid or revoked.") from exc


class PlayerRefreshToken(RefreshToken):
    """A refresh token (and the access tokens made from it) that also carries what
    authentication and the fraud rules read of the user, so a request needs no user
    query: `username` and `joined` (when the account was made, epoch seconds)."""

    @classmethod
    def for_user(cls, user: User) -> PlayerRefreshToken:  # type: ignore[override]
        token = super().for_user(user)
        token[USERNAME_CLAIM] = user.get_username()
        token[JOINED_CLAIM] = int(user.date_joined.timestamp())
        return token  # type: ignore[return-value]


def access_token_for(user: User) -> str:
    """A signed access token for `user`, with the claims of a login."""
    return str(PlayerRefreshToken.for_user(user).access_token)
