"""One DRF exception handler: every API error, DRF's and ours, in the SPEC envelope."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.db import DatabaseError
from django.http import Http404
from rest_framework import exceptions as drf
from rest_framework.response import Response
from rest_framework.views import set_rollback

from core.errors import ApplicationError
from core.logs import request_id_var

logger = logging.getLogger(__name__)

# DRF exception class -> stable code used when DRF's own code is too generic.
_DRF_CODES: dict[type[drf.APIException], str] = {
    drf.ParseError: "malformed_request",
    drf.NotAuthenticated: "not_authenticated",
    drf.AuthenticationFailed: "authentication_failed",
    drf.PermissionDenied: "permission_denied",
    drf.NotFound: "not_found",
    drf.MethodNotAllowed: "method_not_allowed",
    drf.NotAcceptable: "not_acceptable",
    drf.UnsupportedMediaType: "unsupported_media_type",
    drf.Throttled: "rate_limited",
    drf.ValidationError: "invalid",
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def with_request_id(body: dict[str, Any]) -> dict[str, Any]:
    """A 5xx envelope with `details.requestId`, so a user's report finds its log lines."""
    request_id = request_id_var.get()
    if request_id:
        body["error"]["details"] = {**body["error"]["details"], "requestId": request_id}
    return body


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _field_errors(detail: Any) -> Any:
    """DRF's nested error detail, with camelCase field names and plain strings."""
    if isinstance(detail, dict):
        return {camel(str(key)): _field_errors(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_field_errors(item) for item in detail]
    return str(detail)


def _drf_code(exc: drf.APIException) -> str:
    for klass in type(exc).__mro__:
        if klass in _DRF_CODES:
            code = _DRF_CODES[klass]
            break
    else:
        code = "error"
    # simplejwt and our authentication classes carry specific codes ("token_not_valid").
    detail = exc.detail
    if isinstance(detail, dict) and isinstance(detail.get("code"), str):
        code = str(detail["code"])
    elif getattr(detail, "code", None) not in (None, "invalid", "error", exc.default_code):
        code = str(getattr(detail, "code", code))
    return code


def _drf_message(exc: drf.APIException) -> str:
    detail = exc.detail
    if isinstance(detail, dict) and "detail" in detail:
        return str(detail["detail"])
    if isinstance(detail, str):
        return str(detail)
    if isinstance(exc, drf.ValidationError):
        return "The request has invalid fields."
    return str(exc.default_detail)


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Render any exception raised in a DRF view as the SPEC error envelope."""
    headers: dict[str, str] = {}
    if isinstance(exc, ApplicationError):
        status, body = exc.status, error_body(exc.code, exc.message, exc.details)
        headers.update(exc.headers)
    elif isinstance(exc, Http404):
        status, body = 404, error_body("not_found", "Not found.")
    elif isinstance(exc, PermissionDenied):
        status, body = 403, error_body("permission_denied", "Permission denied.")
    elif isinstance(exc, RequestDataTooBig):
        status, body = 413, error_body("payload_too_large", "The request body is too large.")
    elif isinstance(exc, drf.APIException):
        status = exc.status_code
        details: dict[str, Any] = {}
        if isinstance(exc, drf.ValidationError):
            details = {"fields": _field_errors(exc.detail)}
            if isinstance(exc.detail, list):
                details = {"nonField": _field_errors(exc.detail)}
        wait: float | None = getattr(exc, "wait", None)  # set by Throttled's constructor
        if isinstance(exc, drf.Throttled) and wait is not None:
            retry = max(1, int(wait + 0.999))
            headers["Retry-After"] = str(retry)
            details = {"retryAfter": retry}
        body = error_body(_drf_code(exc), _drf_message(exc), details)
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
    elif isinstance(exc, DatabaseError):
        logger.exception("database error in %s", context.get("view"))
        status = 503
        body = error_body("service_unavailable", "The database is unavailable; try again.")
    else:
        return None  # a real bug: Django's handler500 renders the envelope and logs it
    if status >= 500:
        body = with_request_id(body)
    set_rollback()
    return Response(body, status=status, headers=headers)
