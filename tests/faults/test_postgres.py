"""PostgreSQL connections cut by a TCP proxy the test controls, while completions stream
in: 503 with a clear message while cut, recovery without restart, no half-written
completion."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from django.conf import settings

from deploy.stack import Stack
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.invariants import (
    NO_FRAUD,
    Outcomes,
    assert_invariants,
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


@pytest.fixture(scope="module")
def proxy() -> Iterator[TcpProxy]:
    db = settings.DATABASES["default"]
    with TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))) as running:
        yield running


@pytest.fixture(scope="module")
def stack(start_stack, proxy: TcpProxy) -> Stack:  # type: ignore[no-untyped-def]
    db = settings.DATABASES["default"]
    return start_stack(
        web=1,
        ws=1,
        worker=True,
        gunicorn_workers=2,
        database_url=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        extra_env={**NO_FRAUD, "DB_POOL_TIMEOUT": "2"},
    )


def test_it_answers_503_while_postgres_is_cut_and_recovers(stack: Stack, proxy: TcpProxy) -> None:
    ActionTypeFactory(id="click", reward=5)
    users = [UserFactory(username=f"player-{n}") for n in range(4)]
    outcomes = Outcomes()
    player = threading.Thread(
        target=stream_completions,
        kwargs={
            "base_url": stack.url,
            "users": users,
            "action_id": "click",
            "seconds": 16,
            "outcomes": outcomes,
            "timeout": 10,
        },
    )
    player.start()
    try:
        time.sleep(3)
        proxy.cut()
        time.sleep(4)
        proxy.restore()
        time.sleep(3)
        for _ in range(3):  # short cuts, mid-transaction for some requests
            proxy.cut()
            time.sleep(0.3)
            proxy.restore()
            time.sleep(0.7)
    finally:
        proxy.restore()
        player.join(timeout=60)
    assert not player.is_alive()
    outcomes.assert_clean(allowed={200, 201, 503})
    assert outcomes.statuses[503] > 0, "the cut was not seen"
    assert set(outcomes.codes) <= {"service_unavailable"}, dict(outcomes.codes)
    # Recovery: the last seconds, after the cuts, were accepted again.
    ok_before = outcomes.statuses[200]
    stream_completions(
        base_url=stack.url,
        users=users,
        action_id="click",
        seconds=3,
        outcomes=outcomes,
    )
    assert outcomes.statuses[200] > ok_before, dict(outcomes.statuses)
    ambiguous = len(outcomes.ambiguous)
    resolve_ambiguous(stack.url, "click", outcomes)
    assert_invariants(stack, outcomes, backfill=True)
    print(
        f"postgres scenario: {outcomes.requests} requests, {dict(outcomes.statuses)},"
        f" {ambiguous} retried after 503, {sum(outcomes.resolved.values())} found stored"
    )
