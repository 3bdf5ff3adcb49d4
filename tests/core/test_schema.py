"""The OpenAPI schema describes every endpoint of the contract, without warnings."""

from __future__ import annotations

from io import StringIO

import pytest
import yaml
from django.core.management import call_command
from django.test import Client

SPEC_PATHS = {
    "/api/v1/auth/register/": {"post"},
    "/api/v1/auth/token/": {"post"},
    "/api/v1/auth/token/refresh/": {"post"},
    "/api/v1/auth/logout/": {"post"},
    "/api/v1/me/": {"get"},
    "/api/v1/me/sessions/": {"get"},
    "/api/v1/me/sessions/{session_id}/": {"delete"},
    "/api/v1/actions/": {"get"},
    "/api/v1/actions/{id}/start/": {"post"},
    "/api/v1/actions/complete/": {"post"},
    "/api/v1/me/completions/": {"get"},
    "/api/v1/leaderboard/": {"get"},
    "/api/v1/leaderboard/me/": {"get"},
    "/api/v1/leaderboard/users/{user_id}/": {"get"},
}


def test_it_generates_a_valid_schema_without_warnings() -> None:
    out = StringIO()
    call_command("spectacular", "--validate", "--fail-on-warn", stdout=out, stderr=out)
    schema = yaml.safe_load(out.getvalue())
    for path, methods in SPEC_PATHS.items():
        assert path in schema["paths"], path
        assert methods <= set(schema["paths"][path]), path
    complete = schema["paths"]["/api/v1/actions/complete/"]["post"]["responses"]
    assert {"200", "400", "401", "403", "404", "409", "429", "503"} <= set(complete)
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    assert complete["409"]["content"]["application/json"]["schema"] == envelope
    start = schema["paths"]["/api/v1/actions/{id}/start/"]["post"]["responses"]
    assert "401" in start
    board = schema["paths"]["/api/v1/leaderboard/"]["get"]["responses"]
    assert "401" not in board  # public


@pytest.mark.django_db
def test_it_serves_the_docs_without_a_cdn(client: Client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"cdn.jsdelivr" not in response.content
    assert b"/static/drf_spectacular_sidecar/" in response.content
