"""Facts about the HTTP request that several apps need."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest


def client_ip(request: HttpRequest) -> str | None:
    """The client's IP address, trusting exactly `TRUSTED_PROXY_COUNT` proxies.

    Each trusted proxy appends the address it received from, so the client's address is
    the `TRUSTED_PROXY_COUNT`-th entry from the right of X-Forwarded-For: whatever a
    client writes into the header itself stays to the left of it and is ignored.
    """
    candidate = request.META.get("REMOTE_ADDR")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        forwarded = [p for p in forwarded if p]
        if len(forwarded) >= hops:
            candidate = forwarded[-hops]
    try:
        return str(ipaddress.ip_address(candidate)) if candidate else None
    except ValueError:
        return None


def user_agent(request: HttpRequest) -> str:
    return str(request.META.get("HTTP_USER_AGENT", ""))[:512]
