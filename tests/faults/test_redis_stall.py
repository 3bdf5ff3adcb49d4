"""Redis stalls (its process stopped with SIGSTOP for 5 s) under a steady load of
completions and board reads: every request answers within about the socket timeout,
reads from PostgreSQL and completions accepted; no request waits for the stall to end,
and after SIGCONT the scores and the index agree again.

The stall is of this module's own redis-server, never the shared one."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import pytest

from deploy.stack import Stack
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.conftest import OwnRedis
from tests.faults.invariants import (
    NO_FRAUD,
    Outcomes,
    assert_index,
    assert_ledger,
    reconcile,
    stream_completions,
    wait_for,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(180),
    pytest.mark.django_db(transaction=True),
]

STALL_SECONDS = 5.0
# REDIS_SOCKET_TIMEOUT (0.5 s) and a margin for two busy cores.
SLOWEST_ALLOWED = 1.5


def _read_board(base_url: str, seconds: float, outcomes: Outcomes) -> None:
    deadline = time.monotonic() + seconds
    with httpx.Client(base_url=base_url, timeout=10) as http:
        for _ in range(2000):
            if time.monotonic() >= deadline:
                return
            began = time.monotonic()
            try:
                response = http.get("/api/v1/leaderboard/", params={"limit": 10})
            except httpx.HTTPError as exc:
                outcomes.record("reader", None, time.monotonic() - began)
                outcomes.fail(f"read: {type(exc).__name__} {exc}")
                continue
            outcomes.record("reader", response, time.monotonic() - began)
            time.sleep(0.05)


def _stall_under_load(base_url: str, own_redis: OwnRedis) -> Outcomes:
    # The previous test's users are gone from PostgreSQL (each test's rows are flushed),
    # not from this Redis's index: start it empty (cold, rebuilt on the first read).
    own_redis.client().flushdb()
    ActionTypeFactory(id="stall-click", reward=3)
    users = [UserFactory(username=f"staller-{n}") for n in range(3)]
    outcomes = Outcomes()
    seconds = STALL_SECONDS + 4
    load = [
        threading.Thread(
            target=stream_completions,
            kwargs={
                "base_url": base_url,
                "users": users,
                "action_id": "stall-click",
                "seconds": seconds,
                "outcomes": outcomes,
                "timeout": 10,
                "pause": 0.1,
            },
        ),
        threading.Thread(target=_read_board, args=(base_url, seconds, outcomes)),
    ]
    for thread in load:
        thread.start()
    assert own_redis.proc is not None
    try:
        time.sleep(1.5)
        os.kill(own_redis.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(STALL_SECONDS)
        finally:
            os.kill(own_redis.proc.pid, signal.SIGCONT)
    finally:
        for thread in load:
            thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in load)
    return outcomes


def _assert_consistent(stack: Stack, own_redis: OwnRedis, outcomes: Outcomes) -> None:
    assert_ledger(outcomes=outcomes)
    reconcile(stack)

    def index_agrees() -> bool:
        try:
            assert_index(own_redis.url)
        except AssertionError:
            return False
        return True

    wait_for(index_agrees, timeout=30, what="the index to agree with PostgreSQL")


@pytest.fixture(scope="module")
def daphne_on_own_redis(start_stack, own_redis: OwnRedis) -> tuple[Stack, str]:  # type: ignore[no-untyped-def]
    stack = start_stack(
        web=0, ws=1, worker=False, proxy=False, redis_url=own_redis.url, extra_env=NO_FRAUD
    )
    return stack, f"http://127.0.0.1:{stack.ws_ports[0]}"


@pytest.mark.quickfaults
def test_it_answers_every_request_within_the_socket_timeout_while_redis_stalls(
    daphne_on_own_redis: tuple[Stack, str], own_redis: OwnRedis
) -> None:
    stack, base_url = daphne_on_own_redis
    outcomes = _stall_under_load(base_url, own_redis)

    outcomes.assert_clean(allowed={200, 201})
    assert outcomes.slowest < SLOWEST_ALLOWED, f"slowest request {outcomes.slowest:.2f}s"
    assert sum(len(ids) for ids in outcomes.ok.values()) > 0
    _assert_consistent(stack, own_redis, outcomes)
    print(
        f"redis stall: {outcomes.requests} requests, {dict(outcomes.statuses)},"
        f" slowest {outcomes.slowest:.2f}s"
    )


@pytest.fixture(scope="module")
def stack_on_own_redis(start_stack, own_redis: OwnRedis) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(
        web=1, ws=1, worker=False, gunicorn_workers=2, redis_url=own_redis.url, extra_env=NO_FRAUD
    )


@pytest.mark.faults
def test_the_stack_answers_every_request_within_the_socket_timeout_while_redis_stalls(
    stack_on_own_redis: Stack, own_redis: OwnRedis
) -> None:
    outcomes = _stall_under_load(stack_on_own_redis.url, own_redis)

    outcomes.assert_clean(allowed={200, 201})
    assert outcomes.slowest < SLOWEST_ALLOWED, f"slowest request {outcomes.slowest:.2f}s"
    assert sum(len(ids) for ids in outcomes.ok.values()) > 0
    _assert_consistent(stack_on_own_redis, own_redis, outcomes)
    print(
        f"redis stall on the stack: {outcomes.requests} requests, {dict(outcomes.statuses)},"
        f" slowest {outcomes.slowest:.2f}s"
    )
