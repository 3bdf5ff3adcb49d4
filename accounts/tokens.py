"""Token verification shared by REST authentication and the WebSocket middleware."""

from __future__ import annotations

from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.errors import TokenExpiredError, TokenInvalidError


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
