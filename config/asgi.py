"""ASGI entry point (daphne): WebSockets, and HTTP too in the embedded default."""

import contextlib
import os
import resource
import sys
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SCOREBOARD_SERVER_ROLE", "asgi")

from django.core.asgi import get_asgi_application

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from core.logs import install_daphne_access_log  # noqa: E402

install_daphne_access_log()

if "daphne.cli" in sys.modules:  # under the daphne command: its lean housekeeping
    from deploy.daphne import install as install_daphne_server

    install_daphne_server()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.auth.models import AnonymousUser  # noqa: E402

from accounts.websocket import TokenAuthMiddleware, WebSocketAuthMiddlewareStack  # noqa: E402
from core.bodies import SizedBodyASGI  # noqa: E402
from leaderboard.consumers import SERVER_SEND  # noqa: E402
from leaderboard.routing import websocket_urlpatterns  # noqa: E402
from leaderboard.security import AllowedHostsOriginValidator  # noqa: E402

# Every open WebSocket is a file descriptor: let daphne use the hard limit, not the soft one.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft != resource.RLIM_INFINITY and (_hard == resource.RLIM_INFINITY or _soft < _hard):
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))


class ServerSendInScope:
    """Keep the server's own `send` in the scope: the session middleware wraps `send` for
    every message, which the per-socket write of a board push does not need."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        return await self.inner({**scope, SERVER_SEND: send}, receive, send)


class SessionOnlyWithCookie:
    """Look a session up only for a socket that presents the session cookie.

    Channels' `AuthMiddleware` resolves the user in a thread (`database_sync_to_async`)
    on every connect, cookie or not: a thread hop per viewer, which is what limits how
    fast a daphne process accepts a crowd. A socket without the cookie (native apps,
    scripts, anonymous browsers) is anonymous unless it presents a token, so it skips
    that middleware; one with the cookie gets the full stack.
    """

    def __init__(self, inner: Any) -> None:
        self.with_session = WebSocketAuthMiddlewareStack(inner)
        self.without_session = TokenAuthMiddleware(inner)
        self.cookie = settings.SESSION_COOKIE_NAME.encode("latin-1") + b"="

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        for name, value in scope.get("headers", ()):
            if name == b"cookie" and self.cookie in value:
                return await self.with_session(scope, receive, send)
        return await self.without_session({**scope, "user": AnonymousUser()}, receive, send)


# The first HTTP request or board push imports nothing (config/warmup.py).
from config.warmup import freeze_loaded, import_request_code  # noqa: E402

import_request_code()

application = ProtocolTypeRouter(
    {
        "http": SizedBodyASGI(django_asgi_app),  # type: ignore[arg-type]  # asgiref's own ASGI types
        "websocket": ServerSendInScope(
            AllowedHostsOriginValidator(SessionOnlyWithCookie(URLRouter(websocket_urlpatterns)))
        ),
    }
)
# The collector's passes skip what was loaded (config/warmup.py).
freeze_loaded()
