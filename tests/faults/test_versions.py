"""Redis loses its data under a viewer that keeps its socket open: flushed, then killed
and restarted from an older snapshot. The viewer follows the live page's rule (drop an
update whose version is not above the last one seen, resync on a gap) and still sees
every later completion; the REST `version` never goes backwards either."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from deploy.stack import Stack
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.conftest import OwnRedis
from tests.faults.invariants import NO_FRAUD, wait_for

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture(scope="module")
def stack(start_stack, own_redis: OwnRedis) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=1, ws=1, worker=False, redis_url=own_redis.url, extra_env=NO_FRAUD)


class LivePage:
    """The board as `leaderboard/static/leaderboard/live.js` shows it."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.version: int | None = None
        self.scores: dict[str, int] = {}
        self.dropped: list[int] = []
        self.versions: list[int] = []

    def handle(self, message: dict) -> None:  # type: ignore[type-arg]
        if message["type"] == "leaderboard.snapshot":
            self.show(message)
        elif message["type"] == "leaderboard.update":
            version = message["version"]
            if self.version is not None and version != self.version + 1 and version > self.version:
                self.ws.send(json.dumps({"type": "resync"}))
            elif self.version is not None and version <= self.version:
                self.dropped.append(version)
            else:
                self.show(message)

    def show(self, message: dict) -> None:  # type: ignore[type-arg]
        self.version = message["version"]
        self.versions.append(message["version"])
        self.scores = {e["userId"]: e["score"] for e in message["entries"]}

    def wait_for(self, user_id: str, score: int, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while self.scores.get(user_id) != score:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"the page never showed {score} for {user_id}: it shows {self.scores}, "
                    f"version {self.version}, dropped {self.dropped}"
                )
            try:
                self.handle(json.loads(self.ws.recv(timeout=left)))
            except TimeoutError:
                continue


@pytest.fixture
def page(stack: Stack) -> Iterator[LivePage]:
    with connect(
        f"ws://127.0.0.1:{stack.port}/ws/leaderboard/", origin=stack.url, open_timeout=10
    ) as ws:
        live = LivePage(ws)
        live.handle(json.loads(ws.recv(timeout=10)))
        yield live


def complete(stack: Stack, user) -> int:  # type: ignore[no-untyped-def]
    """One completion by `user`; their new score."""
    headers = {"Authorization": f"Bearer {access_token_for(user)}"}
    with httpx.Client(base_url=stack.url, headers=headers, timeout=10) as http:
        started = http.post("/api/v1/actions/click/start/")
        assert started.status_code == 201, started.text
        done = http.post(
            "/api/v1/actions/complete/",
            json={"actionId": "click", "actionToken": started.json()["actionToken"]},
        )
        assert done.status_code == 200, done.text
        return int(done.json()["newScore"])


def rest_version(stack: Stack) -> int:
    response = httpx.get(f"{stack.url}/api/v1/leaderboard/", timeout=10)
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


def test_a_viewer_sees_every_completion_after_redis_loses_its_data(
    stack: Stack, own_redis: OwnRedis, page: LivePage
) -> None:
    ActionTypeFactory(id="click", reward=5)
    users = [UserFactory(username=f"viewer-{n}") for n in range(9)]
    rest: list[int] = [rest_version(stack)]

    def round_of(players: list) -> None:  # type: ignore[type-arg]
        for user in players:
            score = complete(stack, user)
            page.wait_for(str(user.pk), score)
            rest.append(rest_version(stack))

    round_of(users[:3])
    own_redis.client().save()  # the snapshot Redis restarts from below
    round_of(users[3:6])

    own_redis.client().flushall()  # every key gone: counted again from zero before
    round_of(users[:3])
    round_of(users[6:9])

    own_redis.stop()  # killed: restarts from the snapshot taken after the first round
    own_redis.start()
    # daphne's subscription comes back within seconds; a push made before it is back is
    # not this test's subject (the viewer would catch up on the next one).
    wait_for(
        lambda: bool(own_redis.client().pubsub_channels("*:lb:push")),
        timeout=20,
        what="daphne resubscribed",
    )
    try:
        round_of(users[3:9])
    except ConnectionClosed:
        pytest.fail("the viewer's socket closed when Redis restarted")

    assert page.dropped == []
    assert page.versions == sorted(page.versions)
    assert len(set(page.versions)) == len(page.versions)
    assert rest == sorted(rest), rest
