"""Request body size limit, enforced before anything reads the body."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from scoreboard.exceptions import error_body


class HealthCheckMiddleware:
    """Answer `/healthz` and `/readyz` first, whatever the Host header.

    Probes address the process by IP, which ALLOWED_HOSTS rightly does not list, so these
    two paths are served before host validation, sessions or authentication.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from scoreboard import views

        self.get_response = get_response
        self.routes = {"/healthz": views.healthz, "/readyz": views.readyz}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.routes.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            return JsonResponse(
                error_body("method_not_allowed", f'Method "{request.method}" not allowed.'),
                status=405,
                headers={"Allow": "GET, HEAD"},
            )
        return view(request)


class RequestSizeLimitMiddleware:
    """Answer 413 in the SPEC envelope when Content-Length exceeds the configured limit."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.REQUEST_MAX_BODY_BYTES
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return JsonResponse(
                error_body("bad_request", "Content-Length is not a number."), status=400
            )
        if length > limit:
            return JsonResponse(
                error_body(
                    "payload_too_large",
                    f"The request body is larger than {limit} bytes.",
                    {"maxBytes": limit},
                ),
                status=413,
            )
        return self.get_response(request)
