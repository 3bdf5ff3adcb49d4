"""Faults on a real server: a Celery broker that is down does not fail completions."""

from __future__ import annotations

import time
import urllib.request

import httpx
import pytest

from deploy.stack import Stack
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def broker_down(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    """One daphne whose Celery broker is a port where nothing listens."""
    return start_stack(
        web=0,
        ws=1,
        worker=False,
        proxy=False,
        extra_env={"CELERY_BROKER_URL": "redis://127.0.0.1:1/0"},
    )


def test_it_accepts_completions_when_the_broker_is_down(broker_down: Stack) -> None:
    ActionTypeFactory(id="click", reward=5)
    alice = UserFactory(username="alice")
    headers = {"Authorization": f"Bearer {access_token_for(alice)}"}
    base = f"http://127.0.0.1:{broker_down.ws_ports[0]}"
    with httpx.Client(base_url=base, timeout=15) as http:
        token = http.post("/api/v1/actions/click/start/", headers=headers).json()["actionToken"]
        began = time.monotonic()
        response = http.post(
            "/api/v1/actions/complete/",
            headers=headers,
            json={"actionId": "click", "actionToken": token},
        )
        elapsed = time.monotonic() - began
    assert response.status_code == 200, response.text
    assert response.json()["newScore"] == 5
    assert elapsed < 5, f"the completion waited {elapsed:.1f}s for the broker"
    alice.refresh_from_db()
    assert alice.score == 5
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as metrics:  # noqa: S310
        text = metrics.read().decode()
    assert 'scoreboard_backing_service_errors_total{service="celery"} 1.0' in text
