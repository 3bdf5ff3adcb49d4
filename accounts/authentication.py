"""REST authentication: simplejwt with stable error codes and the ban rule.

A request is authenticated from its access token's claims and the account's state in
Redis (accounts.state: one round trip, no SQL), so bans and deactivations take effect on
the next request. `request.user` is then a `TokenClaimsUser`: the claims answer `pk`,
`username`, `date_joined` and the ban state at once, and anything else (the e-mail, the
score, use in an ORM filter) loads the user's row the first time it is asked for. When
the state is unknown (the embedded default, Redis down) the row is read at once, as
before. A view that reads Redis anyway may queue that lookup with its own reads
(`account_state_ahead`), so that both leave in one round trip.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, cast

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.tokens import Token

from accounts import state
from accounts.errors import TokenInvalidError, UserBannedError
from accounts.models import User
from accounts.tokens import JOINED_CLAIM, USERNAME_CLAIM, access_token_verify
from core.errors import ApplicationError

_GONE = "The token's user no longer exists or is inactive."


def _user_row(user_id: uuid.UUID) -> User:
    user = User.objects.filter(pk=user_id).first()
    if user is None or not user.is_active:
        # Deleted and deactivated accounts: the token no longer names a valid user.
        raise TokenInvalidError(_GONE)
    return user


class TokenClaimsUser(SimpleLazyObject):
    """The authenticated user as the token and the account state describe it; the row
    is loaded only when an attribute the claims do not carry is read."""

    def __init__(self, user_id: uuid.UUID, claims: Token, *, banned: bool) -> None:
        super().__init__(lambda: _user_row(user_id))
        known = self.__dict__
        known["pk"] = known["id"] = user_id
        known["is_banned"] = banned
        known["is_active"] = True
        known["is_authenticated"] = True
        known["is_anonymous"] = False
        if USERNAME_CLAIM in claims:
            known["username"] = claims[USERNAME_CLAIM]
        if JOINED_CLAIM in claims:
            known["date_joined"] = datetime.fromtimestamp(claims[JOINED_CLAIM], tz=UTC)

    def __bool__(self) -> bool:
        return True

    def get_username(self) -> str:
        return str(self.username)


# Where `account_state_ahead` leaves the lookup it queued, on the request.
_AHEAD = "account_state_ahead"


class BearerAuthentication(JWTAuthentication):
    """Bearer access tokens; a banned user's token is refused (403) on every write."""

    ahead: state.StateAhead | None = None  # this request's lookup, read ahead

    def get_validated_token(self, raw_token: bytes) -> Token:
        return access_token_verify(raw_token.decode("latin-1"))

    def get_user(self, validated_token: Token) -> Any:
        try:
            user_id = uuid.UUID(str(validated_token.get("user_id")))
        except ValueError as exc:
            raise TokenInvalidError(_GONE) from exc
        ahead = self.ahead
        if ahead is not None and ahead.heard and ahead.user_id == str(user_id):
            known = ahead.found
        else:
            known = state.account_state(user_id)
        if known is None:
            return _user_row(user_id)
        if known in (state.INACTIVE, state.DELETED):
            raise TokenInvalidError(_GONE)
        return TokenClaimsUser(user_id, validated_token, banned=known == state.BANNED)

    def authenticate(self, request: Request) -> tuple[Any, Token] | None:
        self.ahead = getattr(request, _AHEAD, None)
        result = super().authenticate(request)
        if (
            result is not None
            and getattr(result[0], "is_banned", False)
            and request.method not in SAFE_METHODS
        ):
            raise UserBannedError()
        return result


def account_state_ahead(request: Request) -> None:
    """Queue, in the enclosing `redis_batch()`, the account-state lookup that
    authenticating this request's bearer token will need, so that it leaves in the round
    trip of the view's own Redis reads (a board read with a token: one round trip, not
    two). A request without a token, or with one that does not verify, queues nothing:
    its authentication answers as it always does, and with the error it always gives."""
    authenticator = BearerAuthentication()
    try:
        header = authenticator.get_header(request)
        raw = authenticator.get_raw_token(header) if header else None
        if raw is None:
            return
        user_id = uuid.UUID(str(authenticator.get_validated_token(raw).get("user_id")))
    except (ApplicationError, AuthenticationFailed, ValueError):
        return
    setattr(request, _AHEAD, state.account_state_ahead(user_id))


class NotBanned(BasePermission):
    """For reads that are the user's own (such as /me): banned users get 403 there too."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if getattr(request.user, "is_banned", False):
            raise UserBannedError()
        return True


def request_user(request: Request | HttpRequest) -> User:
    """The user of a request that passed `IsAuthenticated`: a `User`, or the
    `TokenClaimsUser` that stands in for one (an isinstance check would load its row)."""
    return cast("User", request.user)
