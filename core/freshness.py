"""How fresh a board read must be (SPEC "Leaderboard", freshness): a request with
credentials reads the index as it is now and is never stored by a shared cache; an
anonymous read may be served by one for up to a second, with an ETag that changes
whenever the page changes and `If-None-Match` answered 304 without a body. The stack's
nginx caches those anonymous reads (deploy/nginx/locations.conf)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from rest_framework.response import Response

PUBLIC_SECONDS = 1


def has_credentials(request: HttpRequest) -> bool:
    """A bearer token or a session cookie: the reader may have just scored."""
    return bool(
        request.META.get("HTTP_AUTHORIZATION") or request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    )


def page_etag(page: Mapping[str, Any], *, skip: tuple[str, ...] = ("generatedAt",)) -> str:
    """A strong ETag of the page's content (not of when it was generated)."""
    content = {key: value for key, value in page.items() if key not in skip}
    encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return '"' + hashlib.blake2b(encoded.encode(), digest_size=12).hexdigest() + '"'


def _matches(request: HttpRequest, etag: str) -> bool:
    header = request.META.get("HTTP_IF_NONE_MATCH", "")
    if not header:
        return False
    if header.strip() == "*":
        return True
    tags = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return etag in tags


def board_response(request: HttpRequest, page: Mapping[str, Any]) -> Response | HttpResponse:
    """The read's response with its freshness headers: `private, no-store` with
    credentials; otherwise `public, max-age=1` and an ETag, or 304 when it matches."""
    if has_credentials(request):
        response: Response | HttpResponse = Response(page)
        response["Cache-Control"] = "private, no-store"
        return response
    etag = page_etag(page)
    response = HttpResponse(status=304) if _matches(request, etag) else Response(page)
    response["ETag"] = etag
    response["Cache-Control"] = f"public, max-age={PUBLIC_SECONDS}"
    response["Vary"] = "Authorization, Cookie"
    return response
