"""The ranking index: order, idempotent writes, rebuild, reconciliation, Redis outages."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import User
from leaderboard import rebuild, selectors, services
from leaderboard.index import RedisIndex
from scoreboard.services import ledger_award
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def board() -> list[tuple[str, int]]:
    return [(e["username"], e["score"]) for e in selectors.leaderboard_top(n=100)]


def db_board() -> list[tuple[str, int]]:
    return list(User.objects.ranked().values_list("username", "score"))


def test_it_ranks_higher_scores_first_and_earlier_arrivals_on_ties() -> None:
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    ledger_award(user_id=bob.pk, delta=10)
    ledger_award(user_id=alice.pk, delta=10)  # same score, reached later than bob
    ledger_award(user_id=carol.pk, delta=30)
    assert board() == [("carol", 30), ("bob", 10), ("alice", 10)]
    assert board() == db_board()
    assert selectors.leaderboard_rank_of(user_id=alice.pk) == 3


def test_it_breaks_a_tie_at_the_same_instant_by_user_id() -> None:
    users = sorted((UserFactory() for _ in range(30)), key=lambda u: u.pk)
    same = timezone.now()
    index = RedisIndex()
    rebuild.leaderboard_rebuild()
    for n, user in enumerate(reversed(users)):
        User.objects.filter(pk=user.pk).update(score=5, score_reached_at=same)
        index.apply(
            user_id=user.pk,
            username=user.username,
            score=5,
            reached_at=same,
            entry_id=n + 1,
            ranked=True,
        )
    assert [e["userId"] for e in selectors.leaderboard_top(n=30)] == [str(u.pk) for u in users]
    assert [str(u) for u in User.objects.ranked().values_list("id", flat=True)] == [
        str(u.pk) for u in users
    ]


def test_it_ignores_repeated_and_older_writes() -> None:
    alice = UserFactory(username="alice")
    index = RedisIndex()
    rebuild.leaderboard_rebuild()
    now = timezone.now()
    assert index.apply(
        user_id=alice.pk, username="alice", score=50, reached_at=now, entry_id=7, ranked=True
    )
    assert index.apply(
        user_id=alice.pk, username="alice", score=50, reached_at=now, entry_id=7, ranked=True
    )  # a retry: same result
    assert not index.apply(
        user_id=alice.pk,
        username="alice",
        score=20,
        reached_at=now - timedelta(seconds=5),
        entry_id=6,
        ranked=True,
    )
    assert index.rank(user_id=alice.pk) == (1, 50)
    assert index.page(offset=0, limit=10)[1] == 1


def test_it_leaves_banned_users_off_the_board() -> None:
    alice, mallory = UserFactory(username="alice"), UserFactory(username="mallory")
    ledger_award(user_id=alice.pk, delta=5)
    ledger_award(user_id=mallory.pk, delta=500)
    mallory.is_banned = True
    mallory.save()
    services.leaderboard_user_changed(user=mallory)
    assert board() == [("alice", 5)]
    assert selectors.leaderboard_rank_of(user_id=mallory.pk) is None


def test_it_rebuilds_the_same_order() -> None:
    users = [UserFactory() for _ in range(12)]
    for n, user in enumerate(users):
        ledger_award(user_id=user.pk, delta=(n * 7) % 5 + 1)
    before = board()
    index = RedisIndex()
    first = index.current_generation()
    call_command("rebuild_leaderboard", verbosity=0)
    second = index.current_generation()
    assert first is not None
    assert second not in (None, first)
    assert board() == before == db_board()
    # the old generation is gone: one sorted set and its buckets, nothing else
    assert not list(index.client.scan_iter(match=f"{index.generations}{first}:*"))
    assert index.client.exists(index.generation_keys(second)["z"])


def test_it_repairs_a_skipped_index_update(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    ledger_award(user_id=alice.pk, delta=10)
    # a process dies between commit and index update: the hook never runs
    monkeypatch.setattr(services, "leaderboard_score_changed", lambda **kw: None)
    ledger_award(user_id=bob.pk, delta=20)
    monkeypatch.undo()
    assert board() == [("alice", 10)]
    rebuild.leaderboard_reconcile()
    assert board() == [("bob", 20), ("alice", 10)]


def test_it_reads_from_postgres_in_the_same_order_when_redis_is_down(settings) -> None:  # type: ignore[no-untyped-def]
    for name, points in (("a", 5), ("b", 9), ("c", 5), ("d", 1)):
        ledger_award(user_id=UserFactory(username=name).pk, delta=points)
    from_index = board()
    settings.CACHES = {
        alias: {**config, "LOCATION": "redis://127.0.0.1:1/0"}
        for alias, config in settings.CACHES.items()
    }
    assert board() == from_index == [("b", 9), ("a", 5), ("c", 5), ("d", 1)]
    page = selectors.leaderboard_page(offset=1, limit=2)
    assert [e["rank"] for e in page["entries"]] == [2, 3]
    assert page["total"] == 4
    ledger_award(user_id=User.objects.get(username="d").pk, delta=100)  # writes still succeed
    assert board()[0] == ("d", 101)


def test_it_fails_the_rebuild_command_clearly_when_redis_is_down(settings) -> None:  # type: ignore[no-untyped-def]
    from django.core.management import CommandError

    settings.CACHES = {
        alias: {**config, "LOCATION": "redis://127.0.0.1:1/0"}
        for alias, config in settings.CACHES.items()
    }
    with pytest.raises(CommandError, match="Rebuild failed"):
        call_command("rebuild_leaderboard")
