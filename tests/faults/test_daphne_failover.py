"""One of two daphne instances stopped while 50 viewers watch through nginx: every
viewer the stopped instance dropped reconnects (nginx sends it to the other), every
viewer resyncs, and then every viewer sees the next completion."""

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
from tests.faults.invariants import NO_FRAUD, Outcomes, assert_invariants

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True),
]

VIEWERS = 50


@pytest.fixture(scope="module")
def stack(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=1, ws=2, worker=True, extra_env=NO_FRAUD)


class Viewer:
    """A client that reconnects (bounded) when its socket closes, and asks for a snapshot."""

    def __init__(self, url: str, origin: str) -> None:
        self.url, self.origin = url, origin
        self.ws: websockets.ClientConnection | None = None
        self.reconnects = 0

    async def connect(self) -> list[dict]:
        for attempt in range(40):
            try:
                self.ws = await websockets.connect(self.url, origin=self.origin, open_timeout=10)
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=10))
                assert frame["type"] == "leaderboard.snapshot"
                return frame["entries"]
            except (OSError, websockets.WebSocketException, TimeoutError):
                await asyncio.sleep(0.25 * min(attempt + 1, 4))
        raise AssertionError("could not reconnect")

    async def resync(self) -> list[dict]:
        """Ask for a snapshot; a socket the stopped instance dropped reconnects first."""
        assert self.ws is not None
        try:
            await self.ws.send(json.dumps({"type": "resync"}))
            while True:
                frame = json.loads(await asyncio.wait_for(self.ws.recv(), timeout=10))
                if frame["type"] == "leaderboard.snapshot":
                    return frame["entries"]
        except websockets.ConnectionClosed:
            self.reconnects += 1
            return await self.connect()

    async def sees(self, user_id: str, score: int, timeout: float = 15.0) -> bool:
        assert self.ws is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = json.loads(
                await asyncio.wait_for(self.ws.recv(), timeout=deadline - time.monotonic())
            )
            if frame["type"] in {"leaderboard.update", "leaderboard.snapshot"} and any(
                e["userId"] == user_id and e["score"] == score for e in frame["entries"]
            ):
                return True
        return False


def complete(stack: Stack, user, outcomes: Outcomes) -> httpx.Response:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {access_token_for(user)}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as http:
        token = http.post("/api/v1/actions/click/start/").json()["actionToken"]
        began = time.monotonic()
        done = http.post(
            "/api/v1/actions/complete/", json={"actionId": "click", "actionToken": token}
        )
        outcomes.record(str(user.pk), done, time.monotonic() - began)
    return done


async def _scenario(stack: Stack, user, outcomes: Outcomes) -> list[Viewer]:  # type: ignore[no-untyped-def]
    url = f"ws://127.0.0.1:{stack.port}/ws/leaderboard/"
    viewers = [Viewer(url, stack.url) for _ in range(VIEWERS)]
    for viewer in viewers:  # one at a time: nginx alternates the two instances
        await viewer.connect()
    first = await asyncio.to_thread(complete, stack, user, outcomes)
    assert first.status_code == 200, first.text
    assert all(await asyncio.gather(*(v.sees(str(user.pk), 5) for v in viewers)))

    daphne = next(p for p in stack.processes if p.name == "daphne-0")
    await asyncio.to_thread(daphne.stop)
    snapshots = await asyncio.gather(*(v.resync() for v in viewers))
    assert all(any(e["score"] == 5 for e in entries) for entries in snapshots)

    second = await asyncio.to_thread(complete, stack, user, outcomes)
    assert second.status_code == 200, second.text
    seen = await asyncio.gather(*(v.sees(str(user.pk), 10) for v in viewers))
    assert all(seen), f"{seen.count(False)} viewers missed the completion after failover"
    for viewer in viewers:
        assert viewer.ws is not None
        await viewer.ws.close()
    return viewers


def test_every_viewer_follows_over_to_the_other_instance(stack: Stack) -> None:
    ActionTypeFactory(id="click", reward=5)
    user = UserFactory(username="alice")
    outcomes = Outcomes()
    viewers = asyncio.run(_scenario(stack, user, outcomes))
    moved = sum(1 for v in viewers if v.reconnects)
    assert 0 < moved < VIEWERS, moved  # the stopped instance's viewers, and only those
    assert_invariants(stack, outcomes)
    print(f"daphne failover: {VIEWERS} viewers, {moved} reconnected, 4 requests")
