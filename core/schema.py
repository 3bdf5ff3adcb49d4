"""OpenAPI postprocessing: every error response in the SPEC envelope, and the errors
every operation can give (401 where a token is required, 503 when a service is down)."""

from __future__ import annotations

from typing import Any

ERROR_ENVELOPE = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string", "example": "rate_limited"},
                "message": {"type": "string"},
                "details": {"type": "object", "additionalProperties": True},
            },
        }
    },
}
ENVELOPE_REF = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorEnvelope"}}}


def add_error_envelope(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})["ErrorEnvelope"] = ERROR_ENVELOPE
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            security = operation.get("security", [])
            if security and {} not in security:
                responses.setdefault(
                    "401", {"description": "`not_authenticated`, `token_invalid`, `token_expired`"}
                )
            responses.setdefault("503", {"description": "`service_unavailable`"})
            for status, response in responses.items():
                if status.isdigit() and int(status) >= 400:
                    response["content"] = ENVELOPE_REF
    return result
