"""X-Request-ID: taken from a trusted proxy, made otherwise, returned on every response,
carried into 5xx envelopes and into the Celery tasks a request queues."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from config.celery import _enter_request_id, _leave_request_id, _send_request_id
from core.logs import request_id_var

pytestmark = [pytest.mark.django_db, pytest.mark.urls("tests.core.urls")]

MADE = re.compile(r"^[0-9a-f]{32}$")


def test_it_makes_an_id_when_no_proxy_is_trusted(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.TRUSTED_PROXY_COUNT = 0
    response = client.get("/healthz", HTTP_X_REQUEST_ID="client-chosen-id-123")
    assert MADE.match(response["X-Request-ID"])


def test_it_keeps_the_id_of_a_trusted_proxy(client: Client, settings) -> None:  # type: ignore[no-untyped-def]
    settings.TRUSTED_PROXY_COUNT = 1
    response = client.get("/api/v1/me/", HTTP_X_REQUEST_ID="proxy-id-0123456789")
    assert response.status_code == 401
    assert response["X-Request-ID"] == "proxy-id-0123456789"


@pytest.mark.parametrize(
    "offered", ["short", "x" * 129, "has space in it", 'quote"injected1', "-leading-dash-id"]
)
def test_it_replaces_a_malformed_id_even_from_a_proxy(client: Client, settings, offered) -> None:  # type: ignore[no-untyped-def]
    settings.TRUSTED_PROXY_COUNT = 1
    response = client.get("/healthz", HTTP_X_REQUEST_ID=offered)
    assert MADE.match(response["X-Request-ID"])


def test_each_request_gets_its_own_id(client: Client) -> None:
    first = client.get("/healthz")["X-Request-ID"]
    second = client.get("/api/v1/no-such-thing/")["X-Request-ID"]
    assert first != second
    assert request_id_var.get() is None  # nothing leaks past the request


def test_it_puts_the_id_into_a_500_envelope() -> None:
    client = Client(raise_request_exception=False)
    for path in ("/t/crash/", "/t/crash-plain/"):
        response = client.get(path)
        assert response.status_code == 500
        assert response.json()["error"]["details"]["requestId"] == response["X-Request-ID"]


def test_it_leaves_4xx_envelopes_without_it(client: Client) -> None:
    response = client.post("/t/conflict/")
    assert response.status_code == 409
    assert "requestId" not in response.json()["error"]["details"]


def test_it_puts_the_id_into_a_503_envelope(client: Client, redis_down) -> None:  # type: ignore[no-untyped-def]
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["error"]["details"]["requestId"] == response["X-Request-ID"]


class _Request:
    pass


class _Task:
    name = "fraud.completion_audit"

    def __init__(self) -> None:
        self.request = _Request()


def test_a_queued_task_carries_the_id_in_its_headers_and_runs_with_it() -> None:
    token = request_id_var.set("req-0123456789abcdef")
    headers: dict[str, str] = {}
    try:
        _send_request_id(headers=headers)
    finally:
        request_id_var.reset(token)
    assert headers == {"request_id": "req-0123456789abcdef"}

    # The worker: Celery copies message headers onto task.request.
    task = _Task()
    task.request.request_id = headers["request_id"]  # type: ignore[attr-defined]
    _enter_request_id(task=task, task_id="t1")
    assert request_id_var.get() == "req-0123456789abcdef"
    _leave_request_id(task=task)
    assert request_id_var.get() is None


def test_it_sends_no_header_outside_a_request() -> None:
    headers: dict[str, str] = {}
    _send_request_id(headers=headers)
    assert headers == {}
