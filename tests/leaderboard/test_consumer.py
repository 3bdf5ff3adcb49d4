"""The WebSocket protocol of /ws/leaderboard/, through the whole ASGI application and the
Redis pub/sub channel layer."""

from __future__ import annotations

import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from scoreboard.services import ledger_award
from tests.conftest import access_token_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1")


async def connect(path: str = "/ws/leaderboard/", **kwargs):  # type: ignore[no-untyped-def]
    headers = kwargs.pop("headers", [ORIGIN])
    communicator = WebsocketCommunicator(application, path, headers=headers, **kwargs)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    return communicator


async def next_of(communicator, kind: str, timeout: float = 3.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        frame = json.loads(
            await communicator.receive_from(timeout=max(0.05, deadline - time.monotonic()))
        )
        if frame["type"] == kind:
            return frame


award = database_sync_to_async(ledger_award)


async def test_it_sends_a_snapshot_on_connect() -> None:
    alice = await database_sync_to_async(UserFactory)(username="alice")
    await award(user_id=alice.pk, delta=12)
    communicator = await connect()
    snapshot = json.loads(await communicator.receive_from())
    assert snapshot["type"] == "leaderboard.snapshot"
    assert snapshot["entries"] == [
        {"rank": 1, "userId": str(alice.pk), "username": "alice", "score": 12}
    ]
    assert isinstance(snapshot["version"], int)
    await communicator.disconnect()


async def test_it_answers_ping_resync_and_nonsense() -> None:
    communicator = await connect()
    await next_of(communicator, "leaderboard.snapshot")
    await communicator.send_to(text_data='{"type": "ping"}')
    assert json.loads(await communicator.receive_from()) == {"type": "pong"}
    await communicator.send_to(text_data='{"type": "resync"}')
    assert json.loads(await communicator.receive_from())["type"] == "leaderboard.snapshot"
    await communicator.send_to(text_data="not json")
    assert json.loads(await communicator.receive_from())["code"] == "invalid_json"
    await communicator.send_to(text_data='{"type": "dance"}')
    assert json.loads(await communicator.receive_from())["code"] == "unknown_type"
    await communicator.send_to(text_data="[1, 2]")
    assert json.loads(await communicator.receive_from())["code"] == "unknown_type"
    await communicator.disconnect()


# Frames under 4 KiB it cannot read (issue 19): each gets an error frame, nothing closes.
UNREADABLE_FRAMES = [
    ({"text_data": "[" * 4_000}, "invalid_json"),
    ({"text_data": "[" * 2_000 + "]" * 2_000}, "invalid_json"),
    ({"text_data": '{"a":' * 600 + "1" + "}" * 600}, "invalid_json"),
    ({"text_data": '{"type": "ping", "pad": ' + "[" * 33 + "]" * 33 + "}"}, "invalid_json"),
    ({"text_data": '{"type": NaN}'}, "invalid_json"),
    ({"text_data": '{"type": "ping", "n": Infinity}'}, "invalid_json"),
    ({"text_data": '{"type": "ping", "n": 1e999}'}, "invalid_json"),
    ({"text_data": '{"type": "ping", "type": "resync"}'}, "invalid_json"),
    ({"text_data": "\ud800"}, "invalid_json"),
    ({"bytes_data": b"\xff\xfe\xfd"}, "unsupported_frame"),
    ({"bytes_data": b'{"type": "ping"}'}, "unsupported_frame"),
    ({"text_data": "null"}, "unknown_type"),
    ({"text_data": '{"type": ["ping"]}'}, "unknown_type"),
    ({"text_data": '{"type": {"a": 1}}'}, "unknown_type"),
]


async def test_it_answers_unreadable_frames_with_an_error_and_stays_open() -> None:
    communicator = await connect()
    await next_of(communicator, "leaderboard.snapshot")
    for frame, code in UNREADABLE_FRAMES:
        await communicator.send_to(**frame)
        output = await communicator.receive_output(timeout=3)
        assert output["type"] == "websocket.send", (frame, output)
        answer = json.loads(output["text"])
        assert answer["type"] == "error", (frame, answer)
        assert answer["code"] == code, (frame, answer)
        assert answer["message"]
    await communicator.send_to(text_data='{"type": "ping"}')
    assert json.loads(await communicator.receive_from()) == {"type": "pong"}
    await communicator.disconnect()


async def test_it_closes_on_an_oversize_frame() -> None:
    communicator = await connect()
    await next_of(communicator, "leaderboard.snapshot")
    await communicator.send_to(text_data=json.dumps({"type": "ping", "pad": "x" * 5000}))
    assert await communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4009}


async def test_it_closes_a_flooding_client() -> None:
    communicator = await connect()
    await next_of(communicator, "leaderboard.snapshot")
    for _ in range(25):
        await communicator.send_to(text_data='{"type": "ping"}')
    frames = []
    for _ in range(30):
        output = await communicator.receive_output(timeout=3)
        frames.append(output)
        if output["type"] == "websocket.close":
            break
    assert frames[-1] == {"type": "websocket.close", "code": 4008}


async def test_it_refuses_a_foreign_origin() -> None:
    communicator = WebsocketCommunicator(
        application, "/ws/leaderboard/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect(timeout=5)
    assert not connected


async def test_it_accepts_a_native_client_without_origin() -> None:
    communicator = await connect(headers=[])
    assert json.loads(await communicator.receive_from())["type"] == "leaderboard.snapshot"
    await communicator.disconnect()


async def test_it_closes_4401_for_a_bad_token() -> None:
    communicator = await connect("/ws/leaderboard/?token=bad")
    assert await communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}


async def test_it_requires_login_when_configured(settings) -> None:  # type: ignore[no-untyped-def]
    settings.LEADERBOARD_WS_REQUIRE_LOGIN = True
    communicator = await connect()
    assert await communicator.receive_output(timeout=3) == {"type": "websocket.close", "code": 4401}


async def test_it_pushes_updates_and_my_own_score() -> None:
    alice = await database_sync_to_async(UserFactory)(username="alice")
    token = await database_sync_to_async(access_token_for)(alice)
    communicator = await connect(subprotocols=[f"bearer.{token}"])
    snapshot = await next_of(communicator, "leaderboard.snapshot")
    await award(user_id=alice.pk, delta=40)
    # The two frames may come in either order: the push is not held back for me.update.
    frames: dict[str, dict] = {}
    while len(frames) < 2:
        frame = json.loads(await communicator.receive_from(timeout=3))
        if frame["type"] in ("me.update", "leaderboard.update"):
            frames.setdefault(frame["type"], frame)
    me, update = frames["me.update"], frames["leaderboard.update"]
    assert me == {"type": "me.update", "score": 40, "rank": 1}
    assert update["version"] == snapshot["version"] + 1
    assert update["entries"][0]["score"] == 40
    assert update["changes"] == [
        {"userId": str(alice.pk), "username": "alice", "score": 40, "rank": 1, "previousRank": None}
    ]
    await communicator.disconnect()


async def test_it_coalesces_a_burst_into_a_few_pushes() -> None:
    users = [await database_sync_to_async(UserFactory)() for _ in range(10)]
    communicator = await connect()
    await next_of(communicator, "leaderboard.snapshot")

    def burst() -> float:
        started = time.monotonic()
        for n in range(200):
            ledger_award(user_id=users[n % 10].pk, delta=1 + n % 7)
        return time.monotonic() - started

    elapsed = await database_sync_to_async(burst)()
    pushes = []
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        if await communicator.receive_nothing(timeout=0.05):
            continue  # receive_nothing never cancels the application, a timed-out receive would
        frame = json.loads(await communicator.receive_from())
        if frame["type"] == "leaderboard.update":
            pushes.append(frame)
    # at most one push per 100 ms interval while the burst lasts, plus the final one
    assert 1 <= len(pushes) <= int(elapsed / 0.1) + 3, (len(pushes), elapsed)
    final = await database_sync_to_async(
        lambda: sorted(
            (
                (u.score, u.username)
                for u in type(users[0]).objects.filter(pk__in=[x.pk for x in users])
            ),
            reverse=True,
        )
    )()
    assert [e["score"] for e in pushes[-1]["entries"]] == [score for score, _ in final]
    versions = [p["version"] for p in pushes]
    assert versions == list(range(versions[0], versions[0] + len(versions)))
    await communicator.disconnect()


async def test_it_receives_a_push_once_per_process_for_all_its_sockets() -> None:
    from leaderboard.broadcast import subscriber

    alice = await database_sync_to_async(UserFactory)(username="alice")
    communicators = [await connect() for _ in range(3)]
    for communicator in communicators:
        await next_of(communicator, "leaderboard.snapshot")
    before = subscriber.received
    await award(user_id=alice.pk, delta=5)
    updates = [await next_of(communicator, "leaderboard.update") for communicator in communicators]
    assert len({update["version"] for update in updates}) == 1
    assert subscriber.received - before == 1
    for communicator in communicators:
        await communicator.disconnect()


async def test_it_sends_my_own_score_to_my_sockets_only() -> None:
    alice = await database_sync_to_async(UserFactory)(username="alice")
    bob = await database_sync_to_async(UserFactory)(username="bob")
    mine = await connect(
        subprotocols=[f"bearer.{await database_sync_to_async(access_token_for)(alice)}"]
    )
    theirs = await connect(
        subprotocols=[f"bearer.{await database_sync_to_async(access_token_for)(bob)}"]
    )
    for communicator in (mine, theirs):
        await next_of(communicator, "leaderboard.snapshot")
    await award(user_id=alice.pk, delta=7)
    assert await next_of(mine, "me.update") == {"type": "me.update", "score": 7, "rank": 1}
    update = await next_of(theirs, "leaderboard.update")
    assert update["entries"][0]["username"] == "alice"
    assert await theirs.receive_nothing(timeout=0.5)
    await mine.disconnect()
    await theirs.disconnect()


async def test_it_authenticates_a_browser_session_through_the_whole_stack() -> None:
    from django.test import Client

    alice = await database_sync_to_async(UserFactory)(username="alice")

    def session_cookie() -> str:
        client = Client()
        client.force_login(alice)
        return client.cookies["sessionid"].value

    cookie = await database_sync_to_async(session_cookie)()
    communicator = await connect(headers=[ORIGIN, (b"cookie", f"sessionid={cookie}".encode())])
    await next_of(communicator, "leaderboard.snapshot")
    await award(user_id=alice.pk, delta=9)
    assert await next_of(communicator, "me.update") == {"type": "me.update", "score": 9, "rank": 1}
    await communicator.disconnect()


async def test_it_gives_the_last_push_as_the_snapshot_without_reading_the_board(
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from leaderboard import consumers

    alice = await database_sync_to_async(UserFactory)(username="alice")
    first = await connect()
    await next_of(first, "leaderboard.snapshot")
    await award(user_id=alice.pk, delta=3)
    update = await next_of(first, "leaderboard.update")

    def no_board_read() -> str:
        raise AssertionError("the snapshot read the board instead of the last push")

    monkeypatch.setattr(consumers, "_snapshot", no_board_read)
    second = await connect()
    snapshot = await next_of(second, "leaderboard.snapshot")
    assert snapshot == {
        "type": "leaderboard.snapshot",
        "entries": update["entries"],
        "version": update["version"],
    }
    await second.send_to(text_data='{"type": "resync"}')
    assert await next_of(second, "leaderboard.snapshot") == snapshot
    for communicator in (first, second):
        await communicator.disconnect()
