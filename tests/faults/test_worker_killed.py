"""A Celery worker SIGKILLed mid-task: the task is redelivered (acks_late, and the Redis
transport's visibility timeout, set to 3 s here by CELERY_VISIBILITY_TIMEOUT) and its
record is written once."""

from __future__ import annotations

import signal
import time

import httpx
import psycopg
import pytest
from django.conf import settings

from deploy.stack import BIN, Process, Stack
from fraud.models import AuditEvent
from tests.conftest import access_token_for
from tests.e2e.conftest import test_database_url as database_url
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.invariants import NO_FRAUD, Outcomes, assert_invariants, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True),
]

VISIBILITY = 3


@pytest.fixture(scope="module")
def stack(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(
        web=1,
        ws=1,
        worker=False,
        extra_env={**NO_FRAUD, "CELERY_VISIBILITY_TIMEOUT": str(VISIBILITY)},
    )


def start_worker(stack: Stack, name: str) -> Process:
    argv = [str(BIN / "celery"), "-A", "config", "worker", "--loglevel", "INFO"]
    argv += ["--concurrency", "1", "--without-gossip", "--without-mingle"]
    return stack._spawn(name, argv, stack.env())


def waiting_on_a_lock(conn: psycopg.Connection) -> int:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
        " AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchone()
    return int(row[0]) if row else 0


def test_a_task_killed_mid_way_is_redelivered_and_written_once(stack: Stack) -> None:
    ActionTypeFactory(id="click", reward=5)
    user = UserFactory(username="alice")
    outcomes = Outcomes()
    headers = {"Authorization": f"Bearer {access_token_for(user)}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as http:
        token = http.post("/api/v1/actions/click/start/").json()["actionToken"]
        began = time.monotonic()
        done = http.post(
            "/api/v1/actions/complete/", json={"actionId": "click", "actionToken": token}
        )
        outcomes.record(str(user.pk), done, time.monotonic() - began)
    assert done.status_code == 200, done.text
    completion_id = done.json()["completionId"]

    # Hold the user's row: the audit insert's foreign-key check waits on it, mid-task.
    with psycopg.connect(database_url(), autocommit=False) as blocker:
        blocker.execute("SELECT 1 FROM accounts_user WHERE id = %s FOR UPDATE", [user.pk])
        first = start_worker(stack, "celery-worker-1")
        with psycopg.connect(database_url(), autocommit=True) as watch:
            wait_for(lambda: waiting_on_a_lock(watch), timeout=60, what="the task mid-way")
        first.signal(signal.SIGKILL)
        first.popen.wait(timeout=10)  # type: ignore[union-attr]
        blocker.rollback()
    task_id = first.log_path.read_text().split("fraud.audit_drain[")[1].split("]")[0]

    time.sleep(VISIBILITY + 1)
    second = start_worker(stack, "celery-worker-2")
    wait_for(
        lambda: f"[{task_id}] succeeded" in second.log_path.read_text(errors="replace"),
        timeout=90,
        what="the task redelivered to the new worker",
    )
    assert AuditEvent.objects.filter(completion_id=completion_id).count() == 1
    assert_invariants(stack, outcomes, redis_url=settings.REDIS_URL)
    second.stop()
