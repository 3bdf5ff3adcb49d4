"""WebSocket authentication for Channels.

A socket is authenticated by, in order: an access token in the `token` query parameter;
an access token in the `bearer.<token>` subprotocol (the consumer echoes that subprotocol
back, as browsers require); the Django session cookie. Otherwise it is anonymous.

A token that is present but bad or expired sets `scope["auth_error"]` (`token_invalid` or
`token_expired`); consumers close such sockets with code 4401 right after accepting them
(a close code can only be sent on an accepted socket). Banned users are treated as
anonymous viewers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.middleware import BaseMiddleware
from django.contrib.auth.models import AnonymousUser

from accounts.errors import TokenExpiredError, TokenInvalidError
from accounts.models import User
from accounts.tokens import access_token_verify

SUBPROTOCOL_PREFIX = "bearer."
AUTH_CLOSE_CODE = 4401


def _token_from_scope(scope: dict[str, Any]) -> tuple[str | None, str | None]:
    """(token, subprotocol to echo) from the query string or the subprotocol list."""
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    if query.get("token"):
        return query["token"][0], None
    for protocol in scope.get("subprotocols", []):
        if protocol.startswith(SUBPROTOCOL_PREFIX):
            return protocol[len(SUBPROTOCOL_PREFIX) :], protocol
    return None, None


@database_sync_to_async
def _user_for(raw: str) -> tuple[Any, str | None]:
    try:
        token = access_token_verify(raw)
    except TokenExpiredError:
        return AnonymousUser(), "token_expired"
    except TokenInvalidError:
        return AnonymousUser(), "token_invalid"
    user = User.objects.filter(pk=token.get("user_id"), is_active=True).first()
    if user is None:
        return AnonymousUser(), "token_invalid"
    if user.is_banned:
        return AnonymousUser(), None
    return user, None


class TokenAuthMiddleware(BaseMiddleware):
    """Set `scope["user"]` from an access token, when the socket presents one."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        raw, subprotocol = _token_from_scope(scope)
        scope = dict(scope)
        # The token must never reach a log line: drop it from the query string.
        scope["query_string"] = b""
        if raw is not None:
            user, error = await _user_for(raw)
            scope["user"] = user
            scope["auth_error"] = error
            scope["accepted_subprotocol"] = subprotocol
        return await super().__call__(scope, receive, send)


def WebSocketAuthMiddlewareStack(inner: Any) -> Any:  # noqa: N802 - Channels' naming
    """Session authentication first, then a token (if any) overrides it."""
    return AuthMiddlewareStack(TokenAuthMiddleware(inner))
