"""Token verification shared by REST authentication and the WebSocket middleware."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from django.core.signals import setting_changed
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts.errors import TokenExpiredError, TokenInvalidError

if TYPE_CHECKING:
    from accounts.models import User

USERNAME_CLAIM = "username"
JOINED_CLAIM = "joined"


class _Verified:
    """Access tokens this process has verified, until each one's expiry.

    A client sends the same access token with every request for its lifetime, and the
    token's signature and claims cannot change: decoding and checking it again (HMAC,
    base64, JSON, claim checks) was 5-6 % of a request's CPU. Only tokens that passed
    the full check are kept, keyed by the whole token (signature included), and each is
    used only before its `exp`; at or after it, the full check runs (and refuses it).
    What can change for a valid token, the account's ban or deletion, is checked on
    every request anyway (accounts.state). Bounded: emptied when it holds `size`.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._tokens: dict[str, tuple[float, AccessToken]] = {}

    def get(self, raw: str) -> AccessToken | None:
        hit = self._tokens.get(raw)
        if hit is None or hit[0] <= time.time():
            return None
        return hit[1]

    def put(self, raw: str, token: AccessToken) -> None:
        if len(self._tokens) >= self.size:
            self._tokens.clear()  # a dict's clear and set are atomic under the GIL
        self._tokens[raw] = (float(token["exp"]), token)

    def forget(self, **kwargs: Any) -> None:
        self._tokens.clear()


verified_access_tokens = _Verified()
# A test that changes the JWT settings (signing key, audience) must not find tokens
# checked under the old ones.
setting_changed.connect(verified_access_tokens.forget)


def access_token_verify(raw: str) -> AccessToken:
    """Signature (HS256 only), expiry, audience and issuer; raises token_expired/invalid.
    A token this process verified before is not decoded again until it expires."""
    known = verified_access_tokens.get(raw)
    if known is not None:
        return known
    try:
        token = AccessToken(raw)  # type: ignore[arg-type]  # simplejwt takes the encoded token
    except ExpiredTokenError as exc:
        raise TokenExpiredError() from exc
    except TokenError as exc:
        raise TokenInvalidError() from exc
    verified_access_tokens.put(raw, token)
    return token


def refresh_token_verify(raw: str) -> RefreshToken:
    """A refresh token's signature, expiry and claims, and that it is not blacklisted."""
    try:
        return RefreshToken(raw)  # type: ignore[arg-type]  # simplejwt takes the encoded token
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

    @property
    def access_token(self) -> AccessToken:
        """The pair's access token, issued at the pair's time.

        simplejwt counts the access token's `exp` from the refresh token's creation but
        stamps its `iat` when the access token is built, a moment later (the session
        row is written between the two); across a second's boundary that made a token
        whose `exp - iat` was a second short of its lifetime."""
        access = super().access_token
        access.set_iat(at_time=self.current_time)
        return access


def access_token_for(user: User) -> str:
    """A signed access token for `user`, with the claims of a login."""
    return str(PlayerRefreshToken.for_user(user).access_token)
