"""The request id: taken from a trusted proxy's `X-Request-ID` or made here, kept in a
context variable for the logs and queued tasks, and returned on every response."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from core.logs import request_id_var

HEADER = "X-Request-ID"
# Ids proxies make (nginx's $request_id: 32 hex digits, UUIDs, ULIDs) fit this; anything
# else (too long, spaces, quotes, control characters) is replaced by an id of our own.
_VALID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{7,127}$")


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_from(request: HttpRequest) -> str:
    """The proxy's id when a trusted proxy is in front and sent a well-formed one.

    Without a trusted proxy (`TRUSTED_PROXY_COUNT=0`) the header comes from the client
    itself, which could use it to forge or collide ids in the logs: it is ignored.
    """
    if settings.TRUSTED_PROXY_COUNT > 0:
        offered = str(request.META.get("HTTP_X_REQUEST_ID", ""))
        if _VALID.match(offered):
            return offered
    return new_request_id()


def current_request_id() -> str | None:
    return request_id_var.get()


class RequestIdMiddleware:
    """Outermost middleware: every response, probes and errors included, carries the id."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request_id = request_id_from(request)
        request.request_id = request_id  # type: ignore[attr-defined]
        token = request_id_var.set(request_id)
        try:
            response = self.get_response(request)
        finally:
            request_id_var.reset(token)
        response[HEADER] = request_id
        return response
