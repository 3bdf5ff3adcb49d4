"""Health endpoints and Django's error handlers, all answering in the SPEC envelope."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from scoreboard import metrics as service_metrics
from scoreboard.exceptions import error_body
from scoreboard.health import readiness


def healthz(request: HttpRequest) -> JsonResponse:
    """Process up: answers without touching any backing service."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Backing services reachable: 200, or 503 naming each one that is down."""
    checks = readiness()
    down = sorted(name for name, check in checks.items() if not check["ok"])
    body = {"status": "ok" if not down else "unavailable", "checks": checks}
    if down:
        body["error"] = error_body(
            "service_unavailable", f"Unavailable: {', '.join(down)}.", {"down": down}
        )["error"]
    return JsonResponse(body, status=503 if down else 200)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of this instance's processes."""
    body, content_type = service_metrics.render()
    return HttpResponse(body, content_type=content_type)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        error_body("internal_error", "An unexpected error occurred; it has been logged."),
        status=500,
    )
