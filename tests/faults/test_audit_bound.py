"""Every accepted completion has its `completion.accepted` audit record within the bound
after a run of faults, with a real Celery worker and beat: PostgreSQL black-holed under
the worker (its connections silenced mid-task), then the worker stopped while completions
queue their records, then the private Redis flushed (the outbox and every queued task
lost), then the worker back. The beat's backfill writes what was lost, each record once.

The cadence and age are shortened here so the test runs in well under a minute; the
production defaults' arithmetic is asserted in tests/actions/test_audit_backfill.py."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest
from django.conf import settings

from actions.models import Completion
from deploy.stack import Stack
from fraud.models import AuditEvent
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.conftest import OwnRedis
from tests.faults.invariants import (
    NO_FRAUD,
    Outcomes,
    assert_ledger,
    resolve_ambiguous,
    stream_completions,
)
from tests.faults.proxy import TcpProxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True),
]

AGE, CADENCE, RUN = 2, 3, 10
# The production bound's terms at this test's scale, plus a worker's restart and the
# client-side bound on a task that was waiting on a silenced connection.
BOUND = AGE + CADENCE + RUN + 15


@pytest.fixture(scope="module")
def proxy() -> Iterator[TcpProxy]:
    db = settings.DATABASES["default"]
    with TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))) as running:
        yield running


@pytest.fixture(scope="module")
def stack(start_stack, proxy: TcpProxy, own_redis: OwnRedis) -> Stack:  # type: ignore[no-untyped-def]
    db = settings.DATABASES["default"]
    return start_stack(
        web=1,
        ws=0,
        proxy=False,
        worker=True,
        beat=True,
        gunicorn_workers=2,
        redis_url=own_redis.url,
        database_url=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        extra_env={
            **NO_FRAUD,
            "AUDIT_BACKFILL_AGE_SECONDS": str(AGE),
            "AUDIT_BACKFILL_SECONDS": str(CADENCE),
            "AUDIT_BACKFILL_RUN_SECONDS": str(RUN),
            "AUDIT_DRAIN_SECONDS": "2",
            "LEADERBOARD_RECONCILE_SECONDS": "1",  # keeps the worker on the database
        },
    )


def _missing() -> tuple[int, int]:
    """(completions without their record, records written twice)."""
    have = list(
        AuditEvent.objects.filter(kind=AuditEvent.Kind.COMPLETION_ACCEPTED).values_list(
            "completion_id", flat=True
        )
    )
    want = set(Completion.objects.values_list("id", flat=True))
    return len(want - set(have)), len(have) - len(set(have))


def test_every_accepted_completion_gets_one_record_within_the_bound_after_faults(
    stack: Stack, proxy: TcpProxy, own_redis: OwnRedis
) -> None:
    ActionTypeFactory(id="click", reward=5)
    users = [UserFactory(username=f"audited-{n}") for n in range(4)]
    base_url = f"http://127.0.0.1:{stack.web_ports[0]}"
    worker = next(p for p in stack.processes if p.name == "celery-worker")
    outcomes = Outcomes()

    def play(seconds: float) -> None:
        stream_completions(
            base_url=base_url,
            users=users,
            action_id="click",
            seconds=seconds,
            outcomes=outcomes,
            timeout=15,
        )

    play(2)
    proxy.blackhole()  # the worker's connections (and the web's) silenced for good
    try:
        play(8)
    finally:
        proxy.restore()
    play(2)
    worker.signal(signal.SIGSTOP)
    try:
        play(4)  # records queue in the outbox, drains queue for a worker that is gone
        own_redis.client().flushall()  # a Redis restarted empty: all of that lost
        play(2)
    finally:
        worker.signal(signal.SIGCONT)
    back = time.monotonic()
    resolve_ambiguous(base_url, "click", outcomes)
    assert Completion.objects.count() > 50

    while time.monotonic() - back < BOUND * 2:
        missing, twice = _missing()
        assert twice == 0, "an audit record was written twice"
        if not missing:
            break
        time.sleep(0.5)
    took = time.monotonic() - back
    missing, twice = _missing()
    assert (missing, twice) == (0, 0), f"{missing} completions without a record after {took:.0f} s"
    assert took < BOUND, f"every record only after {took:.0f} s"
    outcomes.assert_clean(allowed={200, 201, 503})
    assert_ledger(outcomes=outcomes, users=users)
    backfilled = AuditEvent.objects.filter(payload__backfilled=True).count()
    print(
        f"audit bound: {Completion.objects.count()} completions, {backfilled} records"
        f" backfilled, all written {took:.1f} s after the worker was back"
    )
