"""WebSocket Origin policy."""

from __future__ import annotations

from typing import Any
from urllib.parse import ParseResult

from channels.security.websocket import OriginValidator
from django.conf import settings


class BrowserOriginValidator(OriginValidator):
    """Refuse sockets whose Origin is not an allowed host; accept sockets with no Origin.

    Browsers always send Origin, so a page on another site (cross-site WebSocket
    hijacking) is refused. Native apps and scripts send none; they authenticate with a
    token, which a foreign page cannot read, so there is nothing for the check to protect.
    """

    def valid_origin(self, parsed_origin: ParseResult | None) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)


def AllowedHostsOriginValidator(application: Any) -> BrowserOriginValidator:  # noqa: N802
    """Like Channels' factory of the same name, with the policy above."""
    return BrowserOriginValidator(application, settings.ALLOWED_HOSTS)
