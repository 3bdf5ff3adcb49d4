"""Middleware of the shared kernel: probes, metrics, the request size limit and the
Content-Security-Policy header."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cache
from typing import Any

from csp import middleware as csp_middleware
from csp.constants import HEADER, HEADER_REPORT_ONLY
from csp.utils import build_policy
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.signals import setting_changed
from django.db import connection
from django.http import HttpRequest, HttpResponse, HttpResponseBase, JsonResponse

from core.exceptions import error_body


class HealthCheckMiddleware:
    """Answer `/healthz`, `/readyz` and `/metrics` first, whatever the Host header.

    Probes and scrapers address the process by IP, which ALLOWED_HOSTS rightly does not
    list, so these paths are served before host validation, sessions or authentication.
    Their answers carry Content-Length, which Django's CommonMiddleware (further down, so
    never reached) adds to the others: without it a WSGI server sends the body chunked,
    one more write for the server and one more chunk for the proxy to decode.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from core import views

        self.get_response = get_response
        self.routes = {
            "/healthz": views.healthz,
            "/readyz": views.readyz,
            "/metrics": views.metrics,
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        view = self.routes.get(request.path_info)
        if view is None:
            return self.get_response(request)
        if request.method not in ("GET", "HEAD"):
            response: HttpResponse = JsonResponse(
                error_body("method_not_allowed", f'Method "{request.method}" not allowed.'),
                status=405,
                headers={"Allow": "GET, HEAD"},
            )
        else:
            response = view(request)
        if not response.streaming and not response.has_header("Content-Length"):
            response["Content-Length"] = str(len(response.content))
        return response


class APIHostMiddleware:
    """Under /api/, a Host header outside ALLOWED_HOSTS gets 400 in the envelope in DEBUG
    too. With DEBUG off Django answers it through handler400 (the envelope already); with
    it on, with its HTML debug page, which no API client can read."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEBUG and request.path_info.startswith("/api/"):
            try:
                request.get_host()
            except DisallowedHost:
                return JsonResponse(
                    error_body("bad_request", "The Host header is not allowed."), status=400
                )
        return self.get_response(request)


class RequestSizeLimitMiddleware:
    """Answer 413 in the SPEC envelope when Content-Length exceeds the configured limit.

    A body sent without Content-Length (chunked) has been given one by the server adapter
    (core.bodies), so this check covers it too."""

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


class MetricsMiddleware:
    """Record each request's latency by route and status, and its database query time."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        from core import metrics

        self.get_response = get_response
        self.metrics = metrics

    def _time_query(
        self,
        execute: Callable[..., Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.metrics.db_query_duration.labels(connection.vendor).observe(
                time.perf_counter() - start
            )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        with connection.execute_wrapper(self._time_query):
            response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        matched = match is not None and match.route and match.url_name != "api-not-found"
        route = f"/{match.route}" if match is not None and matched else "unmatched"
        self.metrics.http_request_duration.labels(
            route, request.method or "", str(response.status_code)
        ).observe(time.perf_counter() - start)
        self._record_pool()
        return response

    def _record_pool(self) -> None:
        """Pool usage under ASGI (psycopg pool); one persistent connection per worker else."""
        pool = getattr(connection, "pool", None)
        if pool is not None:
            stats = pool.get_stats()
            in_use, size = stats["pool_size"] - stats["pool_available"], stats["pool_max"]
        else:
            in_use, size = int(connection.connection is not None), 1
        self.metrics.db_pool_connections.labels("in_use").set(in_use)
        self.metrics.db_pool_connections.labels("size").set(size)


# What a view or decorator sets on a response to change or drop its policy (django-csp).
_CSP_CUSTOMISED = tuple(
    f"_csp_{name}{suffix}"
    for name in ("config", "update", "replace", "exempt")
    for suffix in ("", "_ro")
)


@cache
def _csp_headers() -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """(header, policy, excluded path prefixes) as the settings define them."""
    headers = []
    for header, setting, report_only in (
        (HEADER, "CONTENT_SECURITY_POLICY", False),
        (HEADER_REPORT_ONLY, "CONTENT_SECURITY_POLICY_REPORT_ONLY", True),
    ):
        policy = build_policy(report_only=report_only)
        if policy:
            config = getattr(settings, setting, None) or {}
            excluded = tuple(config.get("EXCLUDE_URL_PREFIXES") or ())
            headers.append((header, policy, excluded))
    return tuple(headers)


def _forget_csp_headers(**kwargs: Any) -> None:
    _csp_headers.cache_clear()


setting_changed.connect(_forget_csp_headers)


class CSPMiddleware(csp_middleware.CSPMiddleware):
    """django-csp's middleware, with the policy of a response nothing customised built once.

    django-csp builds both policies from the settings on every response, which cost about
    a tenth of a board read. A response that no view customised (`csp_update`,
    `csp_replace`, `csp`, `csp_exempt`), to a request that used no nonce, gets the same
    headers every time: they are built once per settings. Anything else, and the DEBUG
    error pages django-csp leaves alone, go through django-csp itself.
    """

    def process_response(
        self, request: HttpRequest, response: HttpResponseBase
    ) -> HttpResponseBase:
        if (
            getattr(request, "_csp_nonce", None) is not None
            or any(hasattr(response, name) for name in _CSP_CUSTOMISED)
            or (settings.DEBUG and response.status_code in (404, 500))
        ):
            return super().process_response(request, response)
        for header, policy, excluded in _csp_headers():
            if header not in response and not request.path_info.startswith(excluded):
                response[header] = policy
        # As django-csp does: a nonce asked for after the header is written is an error.
        request.csp_nonce = csp_middleware.CheckableLazyObject(self._csp_nonce_post_response)  # type: ignore[attr-defined]
        return response
