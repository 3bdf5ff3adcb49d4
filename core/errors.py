"""The application's error hierarchy: every business rule failure has a code and a status.

One exception handler (`core.exceptions`) renders these, and DRF's and Django's own
errors, in the envelope of SPEC.md:
`{"error": {"code": "...", "message": "...", "details": {...}}}`.
"""

from __future__ import annotations

from typing import Any


class ApplicationError(Exception):
    """A failure the client can act on. Subclasses fix `code`, `status` and `message`."""

    code: str = "error"
    status: int = 400
    message: str = "The request could not be processed."

    def __init__(
        self,
        message: str | None = None,
        *,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.message = message or self.message
        self.details = details or {}
        self.headers = headers or {}
        super().__init__(self.message)

    def explain(self) -> str:
        """The message and its details on one line, for an operator's terminal."""
        parts = []
        for field, problems in self.details.items():
            listed = problems if isinstance(problems, list | tuple) else [problems]
            parts.append(f"{field}: {', '.join(str(p) for p in listed)}")
        return f"{self.message} ({'; '.join(parts)})" if parts else self.message


class InvalidInputError(ApplicationError):
    code = "invalid"
    status = 400
    message = "The request has invalid fields."


class NotAuthenticatedError(ApplicationError):
    code = "not_authenticated"
    status = 401
    message = "Authentication credentials were not provided."


class PermissionDeniedError(ApplicationError):
    code = "permission_denied"
    status = 403
    message = "You do not have permission to perform this action."


class NotFoundError(ApplicationError):
    code = "not_found"
    status = 404
    message = "Not found."


class ConflictError(ApplicationError):
    code = "conflict"
    status = 409
    message = "The request conflicts with the current state."


class RateLimitedError(ApplicationError):
    code = "rate_limited"
    status = 429
    message = "Too many requests; try again later."

    def __init__(self, message: str | None = None, *, retry_after: int, **kwargs: Any) -> None:
        headers = {"Retry-After": str(max(1, int(retry_after)))}
        headers.update(kwargs.pop("headers", None) or {})
        details = {"retryAfter": max(1, int(retry_after))}
        details.update(kwargs.pop("details", None) or {})
        super().__init__(message, details=details, headers=headers)


class ServiceUnavailableError(ApplicationError):
    code = "service_unavailable"
    status = 503
    message = "A required backing service is unavailable; try again shortly."
