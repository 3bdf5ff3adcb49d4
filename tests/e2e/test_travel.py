"""Impossible travel on real processes: gunicorn behind nginx, with a load balancer's hop
in front of nginx (TRUSTED_PROXY_COUNT=2), so the player's address is the one that hop
wrote into X-Forwarded-For, and the City database of tests/geoip.py at GEOIP_PATH."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from deploy.stack import Stack
from fraud.models import FraudLog
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory
from tests.geoip import PARIS_IP, SYDNEY_IP

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack(start_stack, geoip_file: Path) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(
        web=1,
        ws=1,
        worker=False,
        extra_env={"GEOIP_PATH": str(geoip_file), "TRUSTED_PROXY_COUNT": "2"},
    )


def complete_from(http: httpx.Client, action_id: str, address: str) -> httpx.Response:
    """A completion as the load balancer forwards it from `address` (nginx appends the
    balancer's own address, 127.0.0.1, after it)."""
    forwarded = {"X-Forwarded-For": address}
    started = http.post(f"/api/v1/actions/{action_id}/start/", headers=forwarded)
    assert started.status_code == 201, started.text
    return http.post(
        "/api/v1/actions/complete/",
        json={"actionId": action_id, "actionToken": started.json()["actionToken"]},
        headers=forwarded,
    )


def test_sydney_right_after_paris_is_flagged_and_the_fraud_log_names_both(stack: Stack) -> None:
    for action_id in ("quiz", "level"):
        ActionTypeFactory(id=action_id, reward=5)
    player = UserFactory(username="shared-account")
    headers = {"Authorization": f"Bearer {access_token_for(player)}", "User-Agent": "e2e"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=15) as http:
        paris = complete_from(http, "quiz", PARIS_IP)
        assert paris.status_code == 200, paris.text
        sydney = complete_from(http, "level", SYDNEY_IP)
    assert sydney.status_code == 200, sydney.text  # flagged, never blocked by this alone
    assert sydney.json()["flagged"] is True

    log = FraudLog.objects.get(event=FraudLog.Event.FLAGGED, user=player)
    assert str(log.completion_id) == sydney.json()["completionId"]
    assert log.ip == SYDNEY_IP
    assert "impossible_travel" in log.rules
    assert log.reasons["impossible_travel"].startswith("Paris, FR to Sydney, AU")
    travel = log.details["evidence"]["impossible_travel"]
    assert (travel["from"]["city"], travel["to"]["city"]) == ("Paris", "Sydney")
    assert log.details["place"] == {"country": "AU", "city": "Sydney"}
