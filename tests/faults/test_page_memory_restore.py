"""Redis restarts from an older snapshot while a process holds board pages: the next
read answers the board Redis now has, not the page from before the restart, at a version
above every one answered before it."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from leaderboard import rebuild, selectors
from leaderboard.index import RedisIndex
from scoreboard.services import ledger_award
from tests.factories import UserFactory
from tests.faults.conftest import OwnRedis

pytestmark = [pytest.mark.quickfaults, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def restartable_redis(settings) -> Iterator[OwnRedis]:  # type: ignore[no-untyped-def]
    server = OwnRedis()
    server.start()
    settings.CACHES = {
        alias: {**config, "LOCATION": server.url} for alias, config in settings.CACHES.items()
    }
    try:
        yield server
    finally:
        server.stop()


def board() -> list[tuple[str, int]]:
    return [(e["username"], e["score"]) for e in selectors.leaderboard_top(n=10)]


def test_a_page_held_from_before_a_restart_is_not_answered_after_it(restartable_redis) -> None:  # type: ignore[no-untyped-def]
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    rebuild.leaderboard_rebuild()
    ledger_award(user_id=alice.pk, delta=10)
    assert board() == [("alice", 10)]
    restartable_redis.client().save()  # the snapshot Redis will restart from

    ledger_award(user_id=bob.pk, delta=20)
    assert board() == [("bob", 20), ("alice", 10)]  # held, at the version after bob's
    held_version = RedisIndex().version()

    restartable_redis.stop()  # killed: bob's write is not in the snapshot
    restartable_redis.start()
    assert RedisIndex().version() < held_version  # the snapshot's
    ledger_award(user_id=alice.pk, delta=1)

    # The index as Redis now holds it (bob's points come back with the reconciler).
    page = selectors.leaderboard_page(offset=0, limit=10)
    assert [(e["username"], e["score"]) for e in page["entries"]] == [("alice", 11)]
    assert page["version"] > held_version
    rebuild.leaderboard_reconcile()
    assert board() == [("bob", 20), ("alice", 11)]


def test_a_read_after_a_restart_answers_a_version_above_the_one_before(restartable_redis) -> None:  # type: ignore[no-untyped-def]
    alice = UserFactory(username="alice")
    rebuild.leaderboard_rebuild()
    ledger_award(user_id=alice.pk, delta=10)
    restartable_redis.client().save()
    ledger_award(user_id=alice.pk, delta=10)
    before = selectors.leaderboard_page(offset=0, limit=10)["version"]

    restartable_redis.stop()
    restartable_redis.start()  # nothing written since: the snapshot's version stands
    assert RedisIndex().version() < before
    after = selectors.leaderboard_page(offset=0, limit=10)
    assert after["version"] > before
    assert selectors.leaderboard_page(offset=0, limit=10)["version"] == after["version"]


def test_the_version_read_after_redis_stalled_is_above_the_one_answered_meanwhile(
    restartable_redis,
) -> None:  # type: ignore[no-untyped-def]
    alice = UserFactory(username="alice")
    rebuild.leaderboard_rebuild()
    ledger_award(user_id=alice.pk, delta=10)
    before = selectors.leaderboard_page(offset=0, limit=10)["version"]
    assert restartable_redis.proc is not None
    os.kill(restartable_redis.proc.pid, signal.SIGSTOP)  # stalls: reads fall back
    try:
        during = selectors.leaderboard_page(offset=0, limit=10)
    finally:
        os.kill(restartable_redis.proc.pid, signal.SIGCONT)
    assert during["entries"][0]["score"] == 10  # from PostgreSQL
    after = selectors.leaderboard_page(offset=0, limit=10)["version"]
    assert before < during["version"] < after
