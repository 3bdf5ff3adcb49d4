"""Health endpoints and Django's error handlers, all answering in the SPEC envelope."""

from __future__ import annotations

import hmac
import ipaddress

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views import csrf
from django.views.decorators.csrf import csrf_exempt

from core import metrics as service_metrics
from core.exceptions import error_body, with_request_id
from core.health import readiness
from core.http import client_ip


def healthz(request: HttpRequest) -> JsonResponse:
    """Process up: answers without touching any backing service."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Backing services reachable: 200, or 503 naming each one that is down."""
    checks = readiness()
    down = sorted(name for name, check in checks.items() if not check["ok"])
    body = {"status": "ok" if not down else "unavailable", "checks": checks}
    if down:
        body["error"] = with_request_id(
            error_body("service_unavailable", f"Unavailable: {', '.join(down)}.", {"down": down})
        )["error"]
    return JsonResponse(body, status=503 if down else 200)


def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition of this instance's processes, for allowed scrapers only."""
    refused = metrics_refusal(request)
    if refused is not None:
        return refused
    body, content_type = service_metrics.render()
    return HttpResponse(body, content_type=content_type)


def metrics_refusal(request: HttpRequest) -> JsonResponse | None:
    """None when the caller may read /metrics: a right bearer token, or no Authorization
    header and a client address in METRICS_ALLOWED_NETWORKS. Else the refusal."""
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, offered = authorization.partition(" ")
        expected = settings.METRICS_TOKEN
        if (
            expected
            and scheme.lower() == "bearer"
            and hmac.compare_digest(offered.strip().encode(), expected.encode())
        ):
            return None
        return JsonResponse(
            error_body("authentication_failed", "The metrics token is not valid."),
            status=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    address = client_ip(request)
    ip = ipaddress.ip_address(address) if address else None
    if ip is not None and any(ip in network for network in settings.METRICS_NETWORKS):
        return None
    return JsonResponse(
        error_body("permission_denied", "Metrics are not available from this address."),
        status=403,
    )


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("bad_request", "Bad request."), status=400)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("permission_denied", "Permission denied."), status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return JsonResponse(error_body("not_found", "Not found."), status=404)


# The route of every /api/ path no other route matches: a POST there is a client's wrong
# address, to be told 404, not a form to check for a CSRF token (a 403 HTML page).
api_not_found = csrf_exempt(page_not_found)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponseBase:
    """CSRF_FAILURE_VIEW: the envelope for an API client; Django's page, which tells a
    browser user what to do, for the admin and the pages."""
    if request.path_info.startswith("/api/"):
        return JsonResponse(
            error_body("csrf_failed", "CSRF verification failed.", {"reason": reason}),
            status=403,
        )
    return csrf.csrf_failure(request, reason=reason)


def server_error(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        with_request_id(
            error_body("internal_error", "An unexpected error occurred; it has been logged.")
        ),
        status=500,
    )
