"""The real processes of deploy.stack (gunicorn, daphne, Celery worker and beat, nginx)
write JSON log lines, with request ids, and not one secret: logins, refreshes, failed
logins, completions and WebSocket connects with known secrets, then every captured line
of every process is searched for them."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import websockets

from deploy.stack import Stack
from tests.e2e.conftest import start_stack  # noqa: F401 - the fixture
from tests.factories import ActionTypeFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PASSWORD = "Correct-Horse-Battery-7731"
WRONG_PASSWORD = "Wrong-Password-Zebra-4410"
BAD_WS_TOKEN = "not-a-real-token-Quokka-9921"
PYTHON_PROCESSES = ("gunicorn-0", "daphne-0", "celery-worker", "celery-beat")


@pytest.fixture(scope="module")
def stack(start_stack) -> Stack:  # type: ignore[no-untyped-def]  # noqa: F811
    return start_stack(web=1, ws=1, worker=True, beat=True)


async def _websockets(stack: Stack, access: str) -> None:
    origin = stack.url
    base = stack.url.replace("http://", "ws://") + "/ws/leaderboard/"
    async with websockets.connect(f"{base}?token={access}", origin=origin, open_timeout=10) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "leaderboard.snapshot"
    async with websockets.connect(
        base, origin=origin, subprotocols=[f"bearer.{access}"], open_timeout=10
    ) as ws:
        await asyncio.wait_for(ws.recv(), 10)
    async with websockets.connect(
        f"{base}?token={BAD_WS_TOKEN}", origin=origin, open_timeout=10
    ) as ws:
        with pytest.raises(websockets.ConnectionClosed):
            await _drain(ws)


async def _drain(ws: websockets.ClientConnection) -> None:
    while True:
        await asyncio.wait_for(ws.recv(), 10)


def _drive(stack: Stack) -> tuple[set[str], str]:
    """Use every secret-bearing path once; the secrets used, and a completion's request id."""
    ActionTypeFactory(id="logs-click", reward=5)
    secrets = {PASSWORD, WRONG_PASSWORD, BAD_WS_TOKEN}
    with httpx.Client(base_url=stack.url, timeout=15) as http:
        created = http.post(
            "/api/v1/auth/register/",
            json={"username": "logwatcher", "email": "lw@example.com", "password": PASSWORD},
        )
        assert created.status_code == 201, created.text
        failed = http.post(
            "/api/v1/auth/token/", json={"username": "logwatcher", "password": WRONG_PASSWORD}
        )
        assert failed.status_code == 401, failed.text
        pair = http.post(
            "/api/v1/auth/token/", json={"username": "logwatcher", "password": PASSWORD}
        ).json()
        secrets |= {pair["access"], pair["refresh"]}
        rotated = http.post("/api/v1/auth/token/refresh/", json={"refresh": pair["refresh"]})
        assert rotated.status_code == 200, rotated.text
        access = rotated.json()["access"]
        secrets |= {access, rotated.json()["refresh"]}
        auth = {"Authorization": f"Bearer {access}"}
        started = http.post("/api/v1/actions/logs-click/start/", headers=auth)
        assert started.status_code == 201, started.text
        action_token = started.json()["actionToken"]
        secrets.add(action_token)
        done = http.post(
            "/api/v1/actions/complete/",
            headers=auth,
            json={"actionId": "logs-click", "actionToken": action_token},
        )
        assert done.status_code == 200, done.text
        replay = http.post(
            "/api/v1/actions/complete/",
            headers=auth,
            json={"actionId": "logs-click", "actionToken": action_token},
        )
        assert replay.status_code == 409, replay.text
        # A token in a REST query string, and a bad bearer header.
        http.get(f"/api/v1/leaderboard/?token={access}")
        http.get("/api/v1/me/", headers={"Authorization": f"Bearer {BAD_WS_TOKEN}"})
    asyncio.run(_websockets(stack, access))
    return secrets, done.headers["X-Request-ID"]


def _lines(stack: Stack, name: str) -> list[str]:
    path = Path(stack.workdir) / f"{name}.log"
    return [line for line in path.read_text(errors="replace").splitlines() if line.strip()]


def _json_lines(lines: list[str]) -> list[dict]:
    found = []
    for line in lines:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


@pytest.fixture(scope="module")
def driven(stack: Stack, django_db_blocker) -> tuple[set[str], str]:  # type: ignore[no-untyped-def]
    """The stack after use, stopped so that every process's output is flushed."""
    with django_db_blocker.unblock():
        secrets, request_id = _drive(stack)
    # The completion queued the audit drain; wait for the worker to run it.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if any(
            line.get("request_id") == request_id and line.get("task") == "fraud.audit_drain"
            for line in _json_lines(_lines(stack, "celery-worker"))
        ):
            break
        time.sleep(0.5)
    stack.stop()
    return secrets, request_id


def _leaks(path: Path, secrets: set[str]) -> list[str]:
    return [
        line
        for line in path.read_text(errors="replace").splitlines()
        if any(secret in line for secret in secrets)
    ]


def test_no_secret_reaches_a_log_line_of_the_app_or_nginx_access(
    stack: Stack, driven: tuple[set[str], str]
) -> None:
    secrets, _ = driven
    logs = {p.stem: p for p in Path(stack.workdir).glob("*.log")}
    assert set(logs) >= {*PYTHON_PROCESSES, "nginx-access"}
    for name, path in logs.items():
        if name == "nginx-error":
            continue  # see the next test
        leaks = _leaks(path, secrets)
        assert not leaks, f"a secret is in {path.name}: {leaks[0][:300]}"
        assert "?token=" not in path.read_text().replace("?token=[redacted]", ""), name


def test_no_secret_reaches_nginx_error_log(stack: Stack, driven: tuple[set[str], str]) -> None:
    secrets, _ = driven
    assert not _leaks(Path(stack.workdir) / "nginx-error.log", secrets)


def test_every_python_process_writes_json_lines(stack: Stack, driven: tuple[set[str], str]) -> None:
    for name in PYTHON_PROCESSES:
        lines = _lines(stack, name)
        parsed = _json_lines(lines)
        assert parsed, f"{name} wrote no JSON line"
        assert all({"time", "level", "logger", "message"} <= set(p) for p in parsed)
        if name.startswith("celery"):
            continue  # Celery prints its start-up banner on stdout, not as a log record
        stray = [line for line in lines if not line.lstrip().startswith("{")]
        assert not stray, f"{name}: non-JSON lines {stray[:3]}"


def test_the_request_id_reaches_the_access_log_and_the_task_it_queued(
    stack: Stack, driven: tuple[set[str], str]
) -> None:
    _, request_id = driven
    # nginx logs each request with its id (buffered up to a second); gunicorn logs none.
    mine: list[str] = []
    for _ in range(50):
        access = (Path(stack.workdir) / "nginx-access.log").read_text().splitlines()
        mine = [line for line in access if line.endswith(request_id)]
        if mine:
            break
        time.sleep(0.1)
    assert any('"POST /api/v1/actions/complete/" 200' in line for line in mine), mine
    worker = _json_lines(_lines(stack, "celery-worker"))
    assert any(
        line.get("request_id") == request_id and line.get("task") == "fraud.audit_drain"
        for line in worker
    ), f"no worker line with request id {request_id}"
