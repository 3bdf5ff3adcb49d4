"""Two daphne instances sharing Redis: a completion accepted by one is pushed by both."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest
import websockets

from deploy.stack import Stack
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def two_instances(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=0, ws=2, worker=False, proxy=False)


async def _watch_b_while_completing_on_a(
    stack: Stack, token: str, user_id: str
) -> tuple[float, dict]:
    port_a, port_b = stack.ws_ports
    url_b = f"ws://127.0.0.1:{port_b}/ws/leaderboard/"
    async with websockets.connect(
        url_b, origin=f"http://127.0.0.1:{port_b}", open_timeout=10
    ) as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert snapshot["type"] == "leaderboard.snapshot"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port_a}", timeout=10) as http:
            started = await http.post("/api/v1/actions/e2e-click/start/", headers=headers)
            assert started.status_code == 201, started.text
            done = await http.post(
                "/api/v1/actions/complete/",
                headers=headers,
                json={"actionId": "e2e-click", "actionToken": started.json()["actionToken"]},
            )
            assert done.status_code == 200, done.text
        # From the completion's answer (after its commit), not from sending it: under load
        # on a shared machine the completion itself can take longer than the push.
        sent = time.perf_counter()
        deadline = sent + 5
        while time.perf_counter() < deadline:
            frame = json.loads(
                await asyncio.wait_for(ws.recv(), timeout=deadline - time.perf_counter())
            )
            if frame["type"] == "leaderboard.update" and any(
                e["userId"] == user_id and e["score"] == 15 for e in frame["entries"]
            ):
                return max(0.0, time.perf_counter() - sent), frame
    raise AssertionError("instance B never pushed the update")


def test_it_pushes_a_completion_on_a_to_viewers_of_b(two_instances: Stack) -> None:
    ActionTypeFactory(id="e2e-click", reward=15)
    alice = UserFactory(username="alice")
    delay, frame = asyncio.run(
        _watch_b_while_completing_on_a(two_instances, access_token_for(alice), str(alice.pk))
    )
    assert delay < 1.0, f"update reached instance B after {delay:.3f}s"
    assert frame["changes"][0]["username"] == "alice"


async def _close_code_after(port: int, frames: list[str]) -> int | None:
    url = f"ws://127.0.0.1:{port}/ws/leaderboard/"
    async with websockets.connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=10) as ws:
        await asyncio.wait_for(ws.recv(), timeout=10)  # the snapshot
        for frame in frames:
            await ws.send(frame)
        try:
            while True:
                await asyncio.wait_for(ws.recv(), timeout=5)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None


@pytest.mark.parametrize(
    ("frames", "code"),
    [
        pytest.param(['{"type": "ping", "pad": "' + "x" * 5000 + '"}'], 4009, id="oversize"),
        pytest.param(['{"type": "ping"}'] * 25, 4008, id="flood"),
    ],
)
def test_it_closes_abusive_sockets_with_a_clear_code(two_instances: Stack, frames, code) -> None:  # type: ignore[no-untyped-def]
    assert asyncio.run(_close_code_after(two_instances.ws_ports[0], frames)) == code
