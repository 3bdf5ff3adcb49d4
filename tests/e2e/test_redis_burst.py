"""A burst of board sockets connecting at once, while players register and complete
actions: every socket gets its snapshot, no request fails, and no server runs out of
Redis connections (every pool makes a caller wait for a connection, boundedly, instead
of failing it with `MaxConnectionsError`).

Against daphne serving HTTP too (make run's configuration) and against the stack
(gunicorn and daphne behind nginx)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
import websockets

from deploy.stack import Stack
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.invariants import NO_FRAUD

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180), pytest.mark.django_db(transaction=True)]

BURST = 500
PLAYERS = 16
# Registrations hash a password (about a second of a busy core); under daphne they give
# their pooled PostgreSQL connection back meanwhile, so more of them than DB_POOL_MAX_SIZE
# (10) at once never wait past DB_POOL_TIMEOUT for one.
REGISTRATIONS = {"daphne_alone": 16, "full_stack": 16}
ENV = {**NO_FRAUD, "REGISTRATIONS_PER_IP": "100000/h"}
REDIS_POOL_FAILURES = ("MaxConnectionsError", "Too many connections", "No connection available")


@pytest.fixture(scope="module")
def daphne_alone(start_stack) -> tuple[Stack, str]:  # type: ignore[no-untyped-def]
    stack = start_stack(web=0, ws=1, worker=False, proxy=False, extra_env=ENV)
    return stack, f"http://127.0.0.1:{stack.ws_ports[0]}"


@pytest.fixture(scope="module")
def full_stack(start_stack) -> tuple[Stack, str]:  # type: ignore[no-untyped-def]
    stack = start_stack(web=1, ws=1, worker=True, gunicorn_workers=2, extra_env=ENV)
    return stack, stack.url


async def _first_push(base: str, token: str) -> None:
    """One viewer, one completion, until its push arrives: the last push is in Redis, so
    the burst's snapshots are read from there (the path that ran out of connections)."""
    url = base.replace("http://", "ws://") + "/ws/leaderboard/"
    async with (
        websockets.connect(url, origin=base, open_timeout=20) as ws,
        httpx.AsyncClient(base_url=base, timeout=20) as http,
    ):
        assert json.loads(await asyncio.wait_for(ws.recv(), 20))["type"] == "leaderboard.snapshot"
        headers = {"Authorization": f"Bearer {token}"}
        started = await http.post("/api/v1/actions/burst-click/start/", headers=headers)
        done = await http.post(
            "/api/v1/actions/complete/",
            headers=headers,
            json={"actionId": "burst-click", "actionToken": started.json()["actionToken"]},
        )
        assert done.status_code == 200, done.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 20))
            if frame["type"] == "leaderboard.update":
                return
    raise AssertionError("no push before the burst")


async def _burst(base: str, tokens: list[str], registrations: int) -> tuple[list[str], list[int]]:
    url = base.replace("http://", "ws://") + "/ws/leaderboard/"
    held: list[websockets.ClientConnection] = []
    outcomes: list[str] = []
    statuses: list[int] = []

    async def one_socket() -> None:
        try:
            ws = await websockets.connect(url, origin=base, open_timeout=30)
            held.append(ws)
            # A push may come first: the socket joins the viewers before its snapshot is
            # read, so that no push between the two is missed.
            for _ in range(5):
                frame = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if frame["type"] != "leaderboard.update":
                    break
            outcomes.append(frame["type"])
        except websockets.InvalidStatus as refused:
            outcomes.append(str(refused.response.status_code))
        except (OSError, TimeoutError, websockets.WebSocketException) as error:
            outcomes.append(type(error).__name__)

    async with httpx.AsyncClient(base_url=base, timeout=30) as http:

        async def one_registration() -> None:
            name = f"burst-{uuid.uuid4().hex[:12]}"
            created = await http.post(
                "/api/v1/auth/register/",
                json={"username": name, "email": f"{name}@example.com", "password": "S0und-pass!"},
            )
            statuses.append(created.status_code)

        async def one_completion(token: str) -> None:
            headers = {"Authorization": f"Bearer {token}"}
            started = await http.post("/api/v1/actions/burst-click/start/", headers=headers)
            statuses.append(started.status_code)
            if started.status_code != 201:
                return
            done = await http.post(
                "/api/v1/actions/complete/",
                headers=headers,
                json={"actionId": "burst-click", "actionToken": started.json()["actionToken"]},
            )
            statuses.append(done.status_code)

        await asyncio.gather(
            *(one_socket() for _ in range(BURST)),
            *(one_registration() for _ in range(registrations)),
            *(one_completion(token) for token in tokens),
        )
    await asyncio.gather(*(ws.close() for ws in held), return_exceptions=True)
    return outcomes, statuses


def _pool_failures(stack: Stack) -> list[str]:
    lines = []
    for log in Path(stack.workdir).glob("*.log"):
        lines += [
            f"{log.name}: {line}"
            for line in log.read_text(errors="replace").splitlines()
            if any(marker in line for marker in REDIS_POOL_FAILURES)
        ]
    return lines


@pytest.mark.parametrize("server", ["daphne_alone", "full_stack"])
def test_a_connect_burst_gets_every_snapshot_and_fails_no_request(
    server: str, request: pytest.FixtureRequest
) -> None:
    stack, base = request.getfixturevalue(server)
    ActionTypeFactory(id="burst-click", reward=1)
    tokens = [access_token_for(UserFactory()) for _ in range(PLAYERS + 1)]
    asyncio.run(_first_push(base, tokens.pop()))

    began = time.monotonic()
    registrations = REGISTRATIONS[server]
    outcomes, statuses = asyncio.run(_burst(base, tokens, registrations))
    took = time.monotonic() - began

    assert outcomes.count("leaderboard.snapshot") == BURST, sorted(set(outcomes))
    expected = [201] * (registrations + PLAYERS) + [200] * PLAYERS
    assert sorted(statuses) == sorted(expected), statuses
    assert _pool_failures(stack) == []
    assert took < 45, f"the burst took {took:.1f}s"
