"""Fan-out across daphne processes: each push reaches each process once (one Redis pub/sub
message per process), and each process writes it to every one of its sockets."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import redis
import redis.asyncio as aioredis
import websockets
from django.conf import settings

from deploy.stack import Stack
from leaderboard.bus import push_channel
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
VIEWERS_PER_PROCESS = 12


@pytest.fixture(scope="module")
def two_processes(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=0, ws=2, worker=False, proxy=False)


async def _connect(port: int, count: int, **kwargs: object) -> list[websockets.ClientConnection]:
    url = f"ws://127.0.0.1:{port}/ws/leaderboard/"
    sockets = [
        await websockets.connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=10, **kwargs)  # type: ignore[arg-type]
        for _ in range(count)
    ]
    for ws in sockets:
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=10))["type"] == (
            "leaderboard.snapshot"
        )
    return sockets


async def _updates(ws: websockets.ClientConnection, seconds: float) -> list[int]:
    """The versions of the board updates a socket receives within `seconds`."""
    versions = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=left))
        except TimeoutError:
            break
        if frame["type"] == "leaderboard.update":
            versions.append(frame["version"])
    return versions


async def _complete(port: int, token: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
        started = await http.post("/api/v1/actions/fan-click/start/", headers=headers)
        assert started.status_code == 201, started.text
        done = await http.post(
            "/api/v1/actions/complete/",
            headers=headers,
            json={"actionId": "fan-click", "actionToken": started.json()["actionToken"]},
        )
        assert done.status_code == 200, done.text


async def _run(stack: Stack, token: str) -> tuple[int, int, list[int], list[list[int]]]:
    port_a, port_b = stack.ws_ports
    sockets = await _connect(port_a, VIEWERS_PER_PROCESS) + await _connect(
        port_b, VIEWERS_PER_PROCESS
    )
    sync = redis.Redis.from_url(settings.REDIS_URL)
    # Every socket has its snapshot, so both processes are subscribed: one each.
    (_, process_subscriptions), *_ = sync.pubsub_numsub(push_channel())
    # Anonymous viewers hold no channel-layer channel (no subscription per socket).
    layer_channels = sync.pubsub_channels(f"{settings.REDIS_KEY_PREFIX}:asgi*")
    listener = aioredis.Redis.from_url(settings.REDIS_URL).pubsub(ignore_subscribe_messages=True)
    await listener.subscribe(push_channel())
    watching = [asyncio.create_task(_updates(ws, 4.0)) for ws in sockets]
    await _complete(port_a, token)
    published: list[int] = []
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline:
        message = await listener.get_message(timeout=0.2)
        if message is not None:
            published.append(json.loads(message["data"])["version"])
    received = await asyncio.gather(*watching)
    await listener.aclose()
    for ws in sockets:
        await ws.close()
    return process_subscriptions, len(layer_channels), published, received


def test_it_sends_each_push_once_per_process_and_once_per_socket(two_processes: Stack) -> None:
    ActionTypeFactory(id="fan-click", reward=7)
    alice = UserFactory(username="alice")
    subscriptions, layer_channels, published, received = asyncio.run(
        _run(two_processes, access_token_for(alice))
    )
    assert subscriptions == 2, "one push subscription per daphne process, not per socket"
    assert layer_channels == 0
    assert published, "the completion was never pushed"
    # Each socket of both processes got every published push exactly once.
    assert all(versions == published for versions in received), (published, received)


async def _me_update_on_b(stack: Stack, token: str) -> dict:
    port_a, port_b = stack.ws_ports
    (ws,) = await _connect(port_b, 1, subprotocols=[f"bearer.{token}"])
    await _complete(port_a, token)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic()))
        if frame["type"] == "me.update":
            await ws.close()
            return frame
    raise AssertionError("no me.update")


def test_it_still_tells_a_viewer_on_another_process_its_own_score(two_processes: Stack) -> None:
    ActionTypeFactory(id="fan-click", reward=7)
    bob = UserFactory(username="bob")
    frame = asyncio.run(_me_update_on_b(two_processes, access_token_for(bob)))
    assert frame == {"type": "me.update", "score": 7, "rank": 1}
