"""The index's compact layout: member encoding, buckets, generations, big scores."""

from __future__ import annotations

import random
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from leaderboard import rebuild
from leaderboard.index import IndexColdError, RedisIndex
from leaderboard.index_layout import bucket_of, member_for, micros_of, user_field, user_id_of
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_orders_members_like_the_board_highest_first() -> None:
    """Equal scores: ZREVRANGE (descending bytes) = earlier time first, then lower id."""
    rng = random.Random(13)
    now = timezone.now()
    times = [now - timedelta(microseconds=rng.randrange(5)) for _ in range(200)]
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(200)]
    pairs = list(zip(times, ids, strict=True))
    by_board = sorted(pairs, key=lambda p: (p[0], p[1].bytes))
    by_member = sorted(pairs, key=lambda p: member_for(user_id=p[1], reached_at=p[0]), reverse=True)
    assert by_member == by_board


def test_it_packs_a_user_into_24_bytes_and_back() -> None:
    user_id, now = uuid.uuid4(), timezone.now()
    member = member_for(user_id=user_id, reached_at=now)
    assert len(member) == 24
    assert member[8:] == user_field(user_id)
    assert user_id_of(member[8:]) == user_id
    assert len(bucket_of(user_field(user_id))) == 4
    assert micros_of(now) == int(now.timestamp()) * 1_000_000 + now.microsecond


def test_it_keeps_users_in_small_listpack_buckets() -> None:
    users = [UserFactory() for _ in range(40)]
    index = RedisIndex()
    rebuild.leaderboard_rebuild()
    now = timezone.now()
    for n, user in enumerate(users):
        index.apply(
            user_id=user.pk, username=user.username, score=n + 1, reached_at=now, entry_id=1,
            ranked=True,
        )  # fmt: skip
    generation = index.current_generation()
    assert generation is not None
    keys = index.generation_keys(generation)
    buckets = list(index.client.scan_iter(match=f"{keys['buckets']}*", count=1000))
    assert buckets
    assert {index.client.object("encoding", key) for key in buckets} == {b"listpack"}
    assert index.client.object("encoding", keys["z"]) in (b"listpack", b"skiplist")
    assert index.client.zcard(keys["z"]) == 40
    # nothing else per user: no member->user hash, no separate names or entry-id hashes
    assert not index.client.exists(*(f"{index.base}:{name}" for name in ("m", "u", "e")))


def test_it_keeps_scores_exact_up_to_2_to_the_53() -> None:
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    index = RedisIndex()
    rebuild.leaderboard_rebuild()
    now = timezone.now()
    index.apply(
        user_id=alice.pk, username="alice", score=2**53, reached_at=now, entry_id=1, ranked=True
    )
    index.apply(
        user_id=bob.pk, username="bob", score=2**53 - 1, reached_at=now, entry_id=2, ranked=True
    )
    entries, _total, _ = index.page(offset=0, limit=10)
    assert [(e.username, e.score) for e in entries] == [("alice", 2**53), ("bob", 2**53 - 1)]
    assert index.rank(user_id=bob.pk) == (2, 2**53 - 1)


def test_it_applies_only_newer_ledger_entries_and_moves_the_member() -> None:
    alice = UserFactory(username="alice")
    index = RedisIndex()
    rebuild.leaderboard_rebuild()
    now = timezone.now()

    def put(score: int, entry_id: int, seconds: int, ranked: bool = True) -> bool:
        return index.apply(
            user_id=alice.pk,
            username="alice",
            score=score,
            reached_at=now + timedelta(seconds=seconds),
            entry_id=entry_id,
            ranked=ranked,
        )

    assert put(10, 5, 0)
    assert put(30, 9, 2)
    assert not put(20, 7, 1)  # older entry, delivered late
    assert put(30, 9, 2)  # the same one again: harmless
    generation = index.current_generation()
    assert generation is not None
    assert index.client.zcard(index.generation_keys(generation)["z"]) == 1  # moved, not copied
    assert index.rank(user_id=alice.pk) == (1, 30)
    assert put(30, 9, 2, ranked=False)  # banned: off the board, the entry id is kept
    assert index.rank(user_id=alice.pk) is None
    assert not put(10, 8, 0)  # and an older entry cannot put them back
    assert index.rank(user_id=alice.pk) is None


def test_it_swaps_in_a_new_generation_and_drops_the_old_and_legacy_keys() -> None:
    index = RedisIndex()
    index.client.set(f"{index.base}:z", "legacy")
    index.client.hset(f"{index.base}:u", "member", "legacy")
    now = timezone.now()
    rows = [(uuid.uuid4().bytes, f"p{n}", n + 1, micros_of(now), n + 1) for n in range(50)]
    assert index.replace(rows) == 50
    first = index.current_generation()
    assert index.replace(rows[:10]) == 10
    second = index.current_generation()
    assert first != second
    assert not list(index.client.scan_iter(match=f"{index.generations}{first}:*"))
    assert not index.client.exists(f"{index.base}:z", f"{index.base}:u")
    entries, total, _ = index.page(offset=0, limit=100)
    assert total == 10
    assert [e.username for e in entries] == [f"p{n}" for n in range(9, -1, -1)]


def test_it_refuses_to_publish_a_generation_whose_keys_were_lost() -> None:
    index = RedisIndex()
    now = timezone.now()

    def rows_then_flush():  # type: ignore[no-untyped-def]
        for n in range(3000):
            if n == 2500:  # Redis loses everything half-way through the rebuild
                index.client.delete(*index.client.scan_iter(match=f"{index.base}:*"))
            yield uuid.uuid4().bytes, f"p{n}", n + 1, micros_of(now), n + 1

    with pytest.raises(IndexColdError):
        index.replace(rows_then_flush())
    assert not index.is_ready()
    assert not list(index.client.scan_iter(match=f"{index.generations}*"))


def test_it_cleans_up_after_a_rebuild_that_died_half_way() -> None:
    index = RedisIndex()
    now = timezone.now()

    def rows_then_die():  # type: ignore[no-untyped-def]
        for n in range(10_000):  # more than the batches the rebuild keeps in flight
            yield uuid.uuid4().bytes, f"p{n}", n + 1, micros_of(now), n + 1
        raise RuntimeError("the process died")

    with pytest.raises(RuntimeError):
        index.replace(rows_then_die())
    assert list(index.client.scan_iter(match=f"{index.generations}*"))  # left behind
    assert index.replace([(uuid.uuid4().bytes, "p", 1, micros_of(now), 1)]) == 1
    generation = index.current_generation()
    leftovers = {
        key.decode()
        for key in index.client.scan_iter(match=f"{index.generations}*")
        if not key.decode().startswith(f"{index.generations}{generation}:")
    }
    assert leftovers == set()


def test_a_period_index_uses_fewer_buckets_named_alike() -> None:
    import uuid

    fields = [user_field(uuid.uuid4()) for _ in range(2000)]
    small = {bucket_of(field, 4096) for field in fields}
    assert all(len(name) == 4 and int(name, 16) < 4096 for name in small)
    assert all(bucket_of(f) == f[-2:].hex() for f in fields)  # the global index: 65,536
    assert all(int(bucket_of(f, 4096), 16) == int(bucket_of(f), 16) % 4096 for f in fields)
