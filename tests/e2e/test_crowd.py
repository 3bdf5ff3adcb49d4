"""A crowd of WebSockets past nginx's capacity never makes the REST API fail: nginx keeps
connections for HTTP (deploy.stack.REST_RESERVE) and refuses the extra sockets with 503.

nginx is sized down here (a small file-descriptor budget) so that a few hundred sockets
are "past capacity"; the arithmetic is the same as for the machine's real limit."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import websockets

from deploy.stack import REST_RESERVE, NginxSizing, Stack
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
SIZING = NginxSizing(worker_processes=1, rlimit_nofile=REST_RESERVE + 64 + 2 * 40)
CROWD = 700  # more than worker_connections / 2: without the cap nginx runs out
COMPLETIONS = 12


@pytest.fixture(scope="module")
def small_nginx(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=1, ws=1, worker=False, nginx_sizing=SIZING)


async def _crowd_and_completions(stack: Stack, tokens: list[str]) -> tuple[list, list[int]]:
    url = stack.url.replace("http://", "ws://") + "/ws/leaderboard/"
    held: list[websockets.ClientConnection] = []
    outcomes: list[object] = []

    async def one_socket() -> None:
        try:
            held.append(await websockets.connect(url, origin=stack.url, open_timeout=20))
            outcomes.append("open")
        except websockets.InvalidStatus as refused:
            outcomes.append(refused.response.status_code)
        except (OSError, TimeoutError, websockets.WebSocketException) as error:
            outcomes.append(type(error).__name__)

    statuses: list[int] = []
    async with httpx.AsyncClient(base_url=stack.url, timeout=20) as http:

        async def one_completion() -> None:
            # One player per completion: the per-user rate limit is not what this tests.
            headers = {"Authorization": f"Bearer {tokens[len(statuses)]}"}
            started = await http.post("/api/v1/actions/crowd-click/start/", headers=headers)
            if started.status_code != 201:
                statuses.append(started.status_code)
                return
            done = await http.post(
                "/api/v1/actions/complete/",
                headers=headers,
                json={"actionId": "crowd-click", "actionToken": started.json()["actionToken"]},
            )
            statuses.append(done.status_code)

        crowd = [asyncio.create_task(one_socket()) for _ in range(CROWD)]
        for _ in range(COMPLETIONS):
            await one_completion()
        await asyncio.gather(*crowd)
        # The crowd is still connected: the API still answers.
        await one_completion()
    for ws in held:
        await ws.close()
    return outcomes, statuses


def test_it_refuses_sockets_past_capacity_and_keeps_serving_completions(
    small_nginx: Stack,
) -> None:
    ActionTypeFactory(id="crowd-click", reward=1)
    tokens = [access_token_for(UserFactory()) for _ in range(COMPLETIONS + 1)]
    outcomes, statuses = asyncio.run(_crowd_and_completions(small_nginx, tokens))
    assert statuses == [200] * (COMPLETIONS + 1)
    opened = outcomes.count("open")
    assert opened == SIZING.websockets_total
    assert outcomes.count(503) == CROWD - opened, outcomes
