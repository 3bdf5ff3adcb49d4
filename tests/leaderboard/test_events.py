"""The live board's frames: one encoder each, and the frames assembled elsewhere (the
index's Lua `me.update`, the snapshot of the last push) byte-equal to them."""

from __future__ import annotations

import json
import time

import pytest
import redis
from django.conf import settings

from leaderboard import bus, events
from leaderboard.rebuild import leaderboard_rebuild
from scoreboard.services import ledger_award
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_each_encoder_writes_the_protocol_s_frame() -> None:
    assert json.loads(events.encode_me_update(7, None)) == {
        "type": "me.update",
        "score": 7,
        "rank": None,
    }
    assert json.loads(events.PONG) == {"type": "pong"}
    assert json.loads(events.encode_error("unknown_type", "Known types: ping, resync.")) == {
        "type": "error",
        "code": "unknown_type",
        "message": "Known types: ping, resync.",
    }
    entries = [{"rank": 1, "userId": "u", "username": "alice", "score": 3}]
    assert events.snapshot_from_raw(json.dumps(entries, separators=(",", ":")), 9) == (
        events.encode_snapshot(entries, 9)
    )
    update = json.loads(events.encode_update(entries, [], 10))
    assert (update["type"], update["version"], update["entries"]) == (
        "leaderboard.update",
        10,
        entries,
    )


def test_the_index_script_publishes_the_encoder_s_me_update() -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    ledger_award(user_id=bob.pk, delta=50)
    leaderboard_rebuild()
    client = redis.Redis.from_url(settings.REDIS_URL)
    pubsub = client.pubsub()
    pubsub.subscribe(bus.me_channel())
    try:
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        ledger_award(user_id=alice.pk, delta=20)
        ledger_award(user_id=alice.pk, delta=40)
        frames = []
        deadline = time.monotonic() + 5
        while len(frames) < 2 and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
            if message and message["type"] == "message":
                frames.append(message["data"].decode())
    finally:
        pubsub.close()
        client.close()
    assert frames == [
        f"{alice.pk}\n{events.encode_me_update(20, 2)}",
        f"{alice.pk}\n{events.encode_me_update(60, 1)}",
    ]
