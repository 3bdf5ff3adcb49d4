"""Redis stopped, paused (DEBUG SLEEP) and restarted while completions stream in: each
completion is accepted or refused with a clear 503, never a 500 and never a hang; the
board and the live push recover without restarting any process."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import httpx
import pytest
import websockets

from deploy.stack import Stack
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.conftest import OwnRedis
from tests.faults.invariants import (
    NO_FRAUD,
    Outcomes,
    assert_invariants,
    stream_completions,
    wait_for,
)

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def stack(start_stack, own_redis: OwnRedis) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(
        web=1, ws=1, worker=True, gunicorn_workers=2, redis_url=own_redis.url, extra_env=NO_FRAUD
    )


def complete_once(stack: Stack, user, outcomes: Outcomes) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {access_token_for(user)}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as http:
        started = http.post("/api/v1/actions/click/start/")
        assert started.status_code == 201, started.text
        began = time.monotonic()
        done = http.post(
            "/api/v1/actions/complete/",
            json={"actionId": "click", "actionToken": started.json()["actionToken"]},
        )
        outcomes.record(str(user.pk), done, time.monotonic() - began)
        return done


async def _sees_push(stack: Stack, user, score_above: int, outcomes: Outcomes) -> dict:  # type: ignore[no-untyped-def]
    """A new viewer sees the next completion of `user` pushed to it."""
    url = f"ws://127.0.0.1:{stack.port}/ws/leaderboard/"
    async with websockets.connect(url, origin=stack.url, open_timeout=10) as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert snapshot["type"] == "leaderboard.snapshot"
        done = await asyncio.to_thread(complete_once, stack, user, outcomes)
        assert done.status_code == 200, done.text
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
            if frame["type"] == "leaderboard.update" and any(
                e["userId"] == str(user.pk) and e["score"] > score_above for e in frame["entries"]
            ):
                return frame
    raise AssertionError("no live push after recovery")


def test_it_survives_redis_stopped_paused_and_restarted(stack: Stack, own_redis: OwnRedis) -> None:
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
        own_redis.stop()  # stopped: SIGKILL, nothing saved
        time.sleep(4)
        own_redis.start()  # restarted empty on the same port
        time.sleep(3)
        # Paused: the server answers nothing for 3 s, then carries on.
        own_redis.client().execute_command("DEBUG", "SLEEP", "3")
    finally:
        player.join(timeout=60)
    assert not player.is_alive()
    outcomes.assert_clean(allowed={200, 201, 503})
    assert outcomes.statuses[200] > 0
    assert outcomes.slowest < 10

    # Recovery on its own: completions succeed, a viewer sees the next one pushed.
    wait_for(
        lambda: complete_once(stack, users[0], outcomes).status_code == 200,
        timeout=20,
        what="recovery",
    )
    users[0].refresh_from_db()
    frame = asyncio.run(_sees_push(stack, users[0], users[0].score, outcomes))
    assert frame["version"] > 0
    # Tasks queued in the restarted Redis are gone: the backfill (beat) writes their
    # audit records; a late delivery of a task writes nothing more.
    assert_invariants(stack, outcomes, redis_url=own_redis.url, backfill=True)
    print(f"redis scenario: {outcomes.requests} requests, {dict(outcomes.statuses)}")
