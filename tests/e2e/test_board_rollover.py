"""A daily board's rollover on two daphne instances sharing Redis: every viewer gets
`leaderboard.rollover` and the new period's snapshot within a second of the boundary."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import websockets

from deploy.stack import Stack
from leaderboard.boards import board_save
from scoreboard.services import ledger_award
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def two_instances(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=0, ws=2, worker=False, proxy=False)


def next_boundary() -> datetime:
    """The next whole minute at least 8 s away: a daily board whose day starts then."""
    now = datetime.now(UTC)
    boundary = now.replace(second=0, microsecond=0) + timedelta(minutes=1)
    if (boundary - now).total_seconds() < 8:
        boundary += timedelta(minutes=1)
    return boundary


async def _watch(port: int, frames: list[tuple[float, dict]], until: float) -> None:
    url = f"ws://127.0.0.1:{port}/ws/boards/daily/"
    async with websockets.connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=10) as ws:
        while time.time() < until:
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=max(0.05, until - time.time()))
            except TimeoutError:
                break
            frames.append((time.time(), json.loads(text)))


async def _run(stack: Stack, boundary: datetime, token: str) -> list[list[tuple[float, dict]]]:
    seen: list[list[tuple[float, dict]]] = [[], []]
    until = boundary.timestamp() + 6
    watchers = [
        asyncio.create_task(_watch(port, seen[i], until)) for i, port in enumerate(stack.ws_ports)
    ]
    # After the boundary, a completion on instance A reaches both in the new period.
    await asyncio.sleep(max(0.0, boundary.timestamp() + 2 - time.time()))
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{stack.ws_ports[0]}", timeout=10
    ) as http:
        started = await http.post("/api/v1/actions/e2e-tick/start/", headers=headers)
        assert started.status_code == 201, started.text
        done = await http.post(
            "/api/v1/actions/complete/",
            headers=headers,
            json={"actionId": "e2e-tick", "actionToken": started.json()["actionToken"]},
        )
        assert done.status_code == 200, done.text
        daily = next(b for b in done.json()["boards"] if b["board"] == "daily")
        assert daily["period"] == boundary.date().isoformat()
        assert (daily["score"], daily["rank"]) == (4, 1)
    await asyncio.gather(*watchers)
    return seen


def test_both_instances_roll_a_daily_board_over_within_a_second(two_instances: Stack) -> None:
    ActionTypeFactory(id="e2e-tick", reward=4)
    boundary = next_boundary()
    board_save(slug="daily", title="Today", period="day", day_starts_at=boundary.time())
    before, after = UserFactory(username="before"), UserFactory(username="after")
    ledger_award(user_id=before.pk, delta=9, action_id="e2e-tick")
    old_key = (boundary - timedelta(days=1)).date().isoformat()
    seen = asyncio.run(_run(two_instances, boundary, access_token_for(after)))
    for frames in seen:
        kinds = [frame["type"] for _, frame in frames]
        assert kinds[0] == "leaderboard.snapshot"
        first = frames[0][1]
        assert first["period"]["key"] == old_key
        assert [e["username"] for e in first["entries"]] == ["before"]
        roll = kinds.index("leaderboard.rollover")
        at, rollover = frames[roll]
        assert 0 <= at - boundary.timestamp() < 1.0, at - boundary.timestamp()
        assert rollover["closed"]["key"] == old_key
        assert rollover["current"]["key"] == boundary.date().isoformat()
        assert datetime.fromisoformat(rollover["current"]["startsAt"]) == boundary
        snapshot = frames[roll + 1][1]
        assert snapshot["type"] == "leaderboard.snapshot"
        assert snapshot["period"]["key"] == boundary.date().isoformat()
        assert snapshot["entries"] == []
        assert snapshot["version"] > first["version"]
        updates = [f for _, f in frames[roll + 2 :] if f["type"] == "leaderboard.update"]
        assert updates
        assert [e["username"] for e in updates[-1]["entries"]] == ["after"]
        assert kinds.count("leaderboard.rollover") == 1
