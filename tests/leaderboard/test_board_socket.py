"""`/ws/boards/{slug}/` through the whole ASGI application and Redis: the snapshot and
updates of the board's current period, me.update with the user's boards, the rollover."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from leaderboard.boards import board_save
from scoreboard.services import ledger_award
from tests.conftest import access_token_for
from tests.factories import UserFactory
from tests.leaderboard.test_consumer import connect, next_of

pytestmark = pytest.mark.django_db(transaction=True)

award = database_sync_to_async(ledger_award)


async def test_a_board_socket_shows_its_period_and_updates_live() -> None:
    await database_sync_to_async(board_save)(slug="daily", title="Today", period="day")
    alice = await database_sync_to_async(UserFactory)(username="alice")
    await award(user_id=alice.pk, delta=5, action_id="click")
    token = await database_sync_to_async(access_token_for)(alice)
    socket = await connect(f"/ws/boards/daily/?token={token}")
    snapshot = await next_of(socket, "leaderboard.snapshot")
    today = timezone.now().date().isoformat()
    assert snapshot["board"] == "daily"
    assert snapshot["period"]["key"] == today
    assert [(e["username"], e["score"]) for e in snapshot["entries"]] == [("alice", 5)]
    await award(user_id=alice.pk, delta=7, action_id="click")
    me = await next_of(socket, "me.update")
    assert me["score"] == 12
    assert me["boards"] == [{"board": "daily", "period": today, "score": 12, "rank": 1}]
    update = await next_of(socket, "leaderboard.update")
    assert update["board"] == "daily"
    assert update["version"] > snapshot["version"]
    assert [(e["username"], e["score"]) for e in update["entries"]] == [("alice", 12)]
    await socket.disconnect()


async def test_an_unknown_board_closes_with_4404() -> None:
    socket = await connect("/ws/boards/nope/")
    frame = json.loads(await socket.receive_from(timeout=3))
    assert frame["code"] == "board_not_found"
    closed = await socket.receive_output(timeout=3)
    assert closed == {"type": "websocket.close", "code": 4404}


async def test_a_viewer_sees_the_rollover_within_a_second_of_the_end() -> None:
    now = timezone.now()
    end = now + timedelta(seconds=1.5)
    await database_sync_to_async(board_save)(
        slug="sprint",
        title="Sprint",
        period="season",
        starts_at=now - timedelta(hours=1),
        ends_at=end,
    )
    bob = await database_sync_to_async(UserFactory)(username="bob")
    await award(user_id=bob.pk, delta=3, action_id="click")
    socket = await connect("/ws/boards/sprint/")
    snapshot = await next_of(socket, "leaderboard.snapshot")
    assert snapshot["period"] == {"key": "sprint", "endsAt": end.isoformat()}
    rollover = await next_of(socket, "leaderboard.rollover", timeout=5)
    seen = timezone.now()
    assert 0 <= (seen - end).total_seconds() < 1.0
    assert rollover["board"] == "sprint"
    assert rollover["closed"]["key"] == "sprint"
    assert rollover["current"] is None
    assert datetime.fromisoformat(rollover["closed"]["endsAt"]) == end
    after = await next_of(socket, "leaderboard.snapshot")
    assert [e["username"] for e in after["entries"]] == ["bob"]  # the season's final top
    assert await socket.receive_nothing(timeout=1.5)  # one rollover, not one per turn
    await socket.disconnect()


def test_a_turn_reads_every_watched_boards_top_in_one_round_trip(alice, bob, redis_calls) -> None:  # type: ignore[no-untyped-def]
    from leaderboard.board_broadcast import BoardBroadcaster, BoardView

    for slug, period in (("daily", "day"), ("weekly", "week"), ("monthly", "month")):
        board_save(slug=slug, title=slug, period=period)
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    views = [BoardView(slug) for slug in ("daily", "weekly", "monthly", "global")]
    broadcaster = BoardBroadcaster()
    first = broadcaster.turn(views)  # builds the periods' indexes, caches their rows
    assert [json.loads(frames[0])["entries"][0]["score"] for _, frames in first] == [5] * 4
    ledger_award(user_id=bob.pk, delta=7, action_id="click")
    redis_calls.clear()
    turns = broadcaster.turn(views)
    assert redis_calls == ["EVALSHA EVALSHA EVALSHA EVALSHA"], redis_calls
    for view, frames in turns:
        update = json.loads(frames[0])
        assert (update["type"], update["board"]) == ("leaderboard.update", view.slug)
        assert [(e["username"], e["score"]) for e in update["entries"]] == [
            ("bob", 7),
            ("alice", 5),
        ]
    assert [frames for _, frames in broadcaster.turn(views)] == [[]] * 4  # nothing moved
