"""Redis restarts from an older snapshot while a process holds board pages: the version
counts up again to one the process holds, and the next read still answers the board
Redis now has, not the page from before the restart."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leaderboard import selectors, services
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
    services.leaderboard_rebuild()
    ledger_award(user_id=alice.pk, delta=10)
    assert board() == [("alice", 10)]
    restartable_redis.client().save()  # the snapshot Redis will restart from

    ledger_award(user_id=bob.pk, delta=20)
    assert board() == [("bob", 20), ("alice", 10)]  # held, at the version after bob's
    held_version = RedisIndex().version()

    restartable_redis.stop()  # killed: bob's write is not in the snapshot
    restartable_redis.start()
    assert RedisIndex().version() == held_version - 1
    ledger_award(user_id=alice.pk, delta=1)  # counts the version up to the held one
    assert RedisIndex().version() == held_version

    # The index as Redis now holds it (bob's points come back with the reconciler).
    assert board() == [("alice", 11)]
    services.leaderboard_reconcile()
    assert board() == [("bob", 20), ("alice", 11)]
