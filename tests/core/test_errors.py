"""Every error, DRF's, Django's and ours, answers in the SPEC envelope."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.urls")]


def envelope(response) -> dict:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return body["error"]


def test_it_answers_unknown_api_paths_with_404_envelope(client: Client) -> None:
    response = client.get("/api/v1/no-such-thing/")
    assert response.status_code == 404
    assert envelope(response)["code"] == "not_found"


@pytest.mark.parametrize("path", ["/api/v1/no-such-thing/", "/api/nothing", "/api/v2/leaderboard/"])
def test_it_answers_unknown_api_paths_with_the_envelope_in_debug_too(
    client: Client, settings, path: str
) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = True
    response = client.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert envelope(response)["code"] == "not_found"


def test_it_answers_unknown_page_paths_with_404_envelope(client: Client) -> None:
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert envelope(response)["code"] == "not_found"


def test_it_answers_wrong_method_with_405_envelope(client: Client) -> None:
    response = client.get("/t/echo/")
    assert response.status_code == 405
    assert envelope(response)["code"] == "method_not_allowed"


def test_it_answers_malformed_json_with_400_envelope(client: Client) -> None:
    response = client.post("/t/echo/", data='{"a": 1,', content_type="application/json")
    assert response.status_code == 400
    assert envelope(response)["code"] == "malformed_request"


def test_it_answers_wrong_content_type_with_415_envelope(client: Client) -> None:
    response = client.post("/t/echo/", data="a=1", content_type="text/plain")
    assert response.status_code == 415
    assert envelope(response)["code"] == "unsupported_media_type"


def test_it_answers_an_oversize_body_with_413_envelope(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.REQUEST_MAX_BODY_BYTES = 1024
    body = json.dumps({"pad": "x" * 2048})
    response = client.post("/t/echo/", data=body, content_type="application/json")
    assert response.status_code == 413
    error = envelope(response)
    assert error["code"] == "payload_too_large"
    assert error["details"] == {"maxBytes": 1024}


def test_it_accepts_a_body_under_the_limit(client: Client) -> None:
    response = client.post("/t/echo/", data={"a": 1}, content_type="application/json")
    assert response.status_code == 200
    assert response.json() == {"received": {"a": 1}}


def test_it_renders_application_errors_with_their_code(client: Client) -> None:
    response = client.post("/t/conflict/", data={}, content_type="application/json")
    assert response.status_code == 409
    error = envelope(response)
    assert error == {"code": "conflict", "message": "Already done.", "details": {"hint": "x"}}


@pytest.mark.parametrize("path", ["/t/crash/", "/t/crash-plain/"])
def test_it_hides_crashes_behind_a_500_envelope(path: str) -> None:
    client = Client(raise_request_exception=False)
    response = client.get(path)
    assert response.status_code == 500
    error = envelope(response)
    assert error["code"] == "internal_error"
    assert b"boom" not in response.content
    assert b"Traceback" not in response.content


def test_it_answers_401_in_the_envelope_without_credentials(client: Client) -> None:
    response = client.get("/api/v1/me/")
    assert response.status_code == 401
    assert envelope(response)["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/actions/PR-TAP/start/",
        "/api/v1/actions/%00/start/",
        f"/api/v1/actions/{'a' * 300}/start/",
        "/api/v1/actions/..%2f..%2f/start/",
        "/api/v1/actions/x%20/start/",
        "/api/v1/actions/%F0%9F%98%80/start/",
        "/api/v1/actions/%27%20OR%201%3D1%20--/start/",
        "/api/v1/no-such-thing/",
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_it_answers_a_write_to_an_unrouted_api_path_with_404_not_a_csrf_page(
    method: str, path: str
) -> None:
    client = Client(enforce_csrf_checks=True)
    response = client.generic(method, path, data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert envelope(response)["code"] == "not_found"


def test_it_answers_a_csrf_failure_under_api_with_the_envelope() -> None:
    response = Client(enforce_csrf_checks=True).post("/api/t/form/", data={"a": "1"})
    assert response.status_code == 403
    error = envelope(response)
    assert error["code"] == "csrf_failed"
    assert error["details"]["reason"]


def test_it_keeps_djangos_csrf_page_outside_the_api() -> None:
    response = Client(enforce_csrf_checks=True).post("/t/form/", data={"a": "1"})
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert b"CSRF verification failed" in response.content


@pytest.mark.parametrize("debug", [False, True])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_it_answers_a_foreign_host_under_api_with_400_envelope(
    settings, debug: bool, method: str
) -> None:  # type: ignore[no-untyped-def]
    settings.DEBUG = debug
    client = Client(raise_request_exception=False)
    response = client.generic(
        method, "/api/v1/leaderboard/", data=b"{}", content_type="application/json",
        HTTP_HOST="evil.example",
    )  # fmt: skip
    assert response.status_code == 400
    assert envelope(response)["code"] == "bad_request"
