"""ASGI entry point (daphne): WebSockets, and HTTP too in the embedded default."""

import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("SCOREBOARD_SERVER_ROLE", "asgi")

from django.core.asgi import get_asgi_application

# Django must be set up before anything imports models.
django_asgi_app = get_asgi_application()

from scoreboard.logs import install_daphne_access_log  # noqa: E402

install_daphne_access_log()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from accounts.websocket import WebSocketAuthMiddlewareStack  # noqa: E402
from leaderboard.routing import websocket_urlpatterns  # noqa: E402
from leaderboard.security import AllowedHostsOriginValidator  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            WebSocketAuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
