"""Fraud detection on real processes: gunicorn behind nginx, a Celery worker on the local
Redis broker, and a webhook on a real local HTTP server.

Clients bind to addresses of their own in 127.0.0.0/8, so the stack sees a cheater, a
person and a farm as three different addresses, as it would on the internet.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from config.celery import app as celery_app
from deploy.stack import Stack
from fraud.models import AuditEvent, FraudLog, RiskProfile
from fraud.tasks import completion_audit, user_review
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HOOK: list[dict] = []


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        HOOK.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def webhook_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def stack(start_stack, webhook_url: str) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(
        web=1,
        ws=1,
        worker=True,
        extra_env={
            "COMPLETION_RATE_PER_USER": "30/m",
            "ADMINS": "Security <security@example.com>",
            "FRAUD_ALERT_WEBHOOK_URL": webhook_url,
        },
    )


def client(stack: Stack, user, address: str) -> httpx.Client:  # type: ignore[no-untyped-def]
    """An HTTP client of `user` whose connections come from `address`."""
    return httpx.Client(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {access_token_for(user)}", "User-Agent": "e2e"},
        transport=httpx.HTTPTransport(local_address=address),
        timeout=15,
    )


def complete(http: httpx.Client, action_id: str = "click") -> httpx.Response:
    started = http.post(f"/api/v1/actions/{action_id}/start/")
    assert started.status_code == 201, started.text
    return http.post(
        "/api/v1/actions/complete/",
        json={"actionId": action_id, "actionToken": started.json()["actionToken"]},
    )


def wait_for(predicate, timeout: float = 20.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def test_it_catches_a_cheater_and_a_farm_and_leaves_a_person_alone(stack: Stack) -> None:
    ActionTypeFactory(id="click", reward=5)
    cheater = UserFactory(username="mallory")
    person = UserFactory(username="alice")
    farm = [UserFactory(username=f"farm-{n}") for n in range(10)]

    def play_cheater() -> list[tuple[int, bool]]:
        """A script on a timer, as fast as the rate limit (30 a minute) lets it."""
        outcomes: list[tuple[int, bool]] = []
        with client(stack, cheater, "127.0.0.3") as http:
            began = time.monotonic() + 1.0
            for i in range(20):
                # The token is fetched ahead of the beat, as a script would: only the
                # completion itself runs on the timer.
                started = http.post("/api/v1/actions/click/start/")
                assert started.status_code == 201, started.text
                time.sleep(max(0.0, began + i * 2.0 - time.monotonic()))
                response = http.post(
                    "/api/v1/actions/complete/",
                    json={"actionId": "click", "actionToken": started.json()["actionToken"]},
                )
                outcomes.append((response.status_code, response.json().get("flagged", False)))
                if response.status_code == 403:
                    assert response.json()["error"]["code"] == "fraud_blocked"
                    break
        return outcomes

    def play_person() -> list[tuple[int, bool]]:
        """A person: the same action, 20 times, seconds apart, never evenly."""
        rng = random.Random(11)
        outcomes = []
        with client(stack, person, "127.0.0.2") as http:
            for _ in range(20):
                response = complete(http)
                outcomes.append((response.status_code, response.json().get("flagged", False)))
                time.sleep(rng.uniform(1.2, 3.5))
        return outcomes

    def play_farm() -> list[tuple[int, bool]]:
        """Ten new accounts completing from one address."""
        outcomes = []
        for account in farm:
            with client(stack, account, "127.0.0.10") as http:
                response = complete(http)
                outcomes.append((response.status_code, response.json().get("flagged", False)))
            time.sleep(0.3)
        return outcomes

    # Warm every server process first (its first requests import and connect), so the
    # timings below are the players' own.
    with client(stack, person, "127.0.0.2") as http:
        for _ in range(12):
            assert http.get("/api/v1/actions/").status_code == 200
    with ThreadPoolExecutor(3) as pool:
        cheating, living, farming = (
            pool.submit(play_cheater),
            pool.submit(play_person),
            pool.submit(play_farm),
        )
        cheating, living, farming = cheating.result(), living.result(), farming.result()

    flagged_at = next(i for i, (status, flagged) in enumerate(cheating, 1) if flagged)
    assert flagged_at <= 5, cheating
    assert cheating[-1][0] == 403, cheating
    assert len(cheating) <= 20
    assert living == [(200, False)] * 20, living
    assert all(status == 200 for status, _ in farming), farming
    assert any(flagged for _, flagged in farming), farming
    assert FraudLog.objects.filter(user__username__startswith="farm-", rules__has_key="ip_farm")

    # The worker reviewed the cheater and told the security team of the block.
    wait_for(lambda: RiskProfile.objects.filter(user=cheater, last_reviewed_at__isnull=False))
    profile = RiskProfile.objects.get(user=cheater)
    assert profile.blocks_count == 1
    assert profile.status in {RiskProfile.Status.WATCH, RiskProfile.Status.UNDER_REVIEW}
    wait_for(lambda: any(hook["blocked"] for hook in HOOK))
    assert HOOK[0]["users"][0]["username"] == "mallory"
    worker_log = next(p for p in stack.processes if p.name == "celery-worker").log_path
    assert "Subject: [Scoreboard] Fraud: 1 blocked completions" in worker_log.read_text()
    # Every accepted completion and the block have their audit record, written once.
    accepted = 20 + 10 + len(cheating) - 1
    wait_for(
        lambda: (
            AuditEvent.objects.filter(kind=AuditEvent.Kind.COMPLETION_ACCEPTED).count() == accepted
        )
    )
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.COMPLETION_BLOCKED).count() == 1


def succeeded(stack: Stack, task_id: str) -> int:
    worker = next(p for p in stack.processes if p.name == "celery-worker")
    return worker.log_path.read_text(errors="replace").count(f"[{task_id}] succeeded")


def test_a_task_delivered_twice_writes_its_record_once(stack: Stack, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(celery_app.conf, "task_always_eager", False)
    user = UserFactory(username="twice")
    completion_id = str(uuid.uuid4())
    audit_id, review_id = str(uuid.uuid4()), str(uuid.uuid4())
    for _ in range(2):  # the same message twice, as a redelivery brings it
        completion_audit.apply_async(
            kwargs={
                "kind": "completion.accepted",
                "user_id": str(user.pk),
                "completion_id": completion_id,
                "risk_score": 0.1,
                "payload": {"actionId": "click"},
            },
            task_id=audit_id,
        )
        user_review.apply_async(
            kwargs={"user_id": str(user.pk), "key": "redelivered"}, task_id=review_id
        )
    wait_for(lambda: succeeded(stack, audit_id) == 2 and succeeded(stack, review_id) == 2)
    assert AuditEvent.objects.filter(completion_id=completion_id).count() == 1
    assert FraudLog.objects.filter(user=user, event=FraudLog.Event.REVIEWED).count() == 1
