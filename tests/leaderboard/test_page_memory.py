"""The pages a process holds: a read of an unchanged board decodes nothing, and a read
after any change (a score, a ban, a rebuild) answers the board as it now is, also while
threads read and a writer changes the board at once."""

from __future__ import annotations

import threading
import time

import pytest
from django.core.management import call_command

from accounts.models import User
from leaderboard import index as index_module
from leaderboard import selectors, services
from leaderboard.index import HeldPage, PageMemory, RedisIndex
from leaderboard.index_lua import PAGE
from scoreboard.services import ledger_award
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def board(limit: int = 10) -> list[tuple[str, int]]:
    return [(e["username"], e["score"]) for e in selectors.leaderboard_top(n=limit)]


@pytest.fixture
def decoded(monkeypatch) -> list[int]:  # type: ignore[no-untyped-def]
    """How many entries each read decoded from a page sent by Redis."""
    counts: list[int] = []
    user_id_of = index_module.user_id_of

    def counting(field: bytes):  # type: ignore[no-untyped-def]
        counts.append(1)
        return user_id_of(field)

    monkeypatch.setattr(index_module, "user_id_of", counting)
    return counts


def test_it_sends_a_page_only_when_the_board_changed(decoded) -> None:  # type: ignore[no-untyped-def]
    alice, bob = UserFactory(username="alice"), UserFactory(username="bob")
    ledger_award(user_id=alice.pk, delta=10)
    ledger_award(user_id=bob.pk, delta=5)
    decoded.clear()

    assert board() == [("alice", 10), ("bob", 5)]
    assert len(decoded) == 2
    assert board() == [("alice", 10), ("bob", 5)]
    assert len(decoded) == 2  # unchanged: Redis answered with the tag only

    ledger_award(user_id=bob.pk, delta=20)
    assert board() == [("bob", 25), ("alice", 10)]
    assert len(decoded) == 4


def test_the_script_answers_unchanged_to_the_tag_it_last_sent() -> None:
    ledger_award(user_id=UserFactory(username="alice").pk, delta=3)
    index = RedisIndex()
    keys = [index.keys["ready"], index.keys["v"], index.keys["vrun"]]
    args = [index.generations, 0, 9]
    page = index._script(PAGE)(keys=keys, args=[*args, b"", 0])
    assert page[0] == 1
    tag = page[5]
    assert index._script(PAGE)(keys=keys, args=[*args, tag, 0]) == [2]
    ledger_award(user_id=User.objects.get(username="alice").pk, delta=1)
    assert index._script(PAGE)(keys=keys, args=[*args, tag, 0])[0] == 1


def test_it_answers_each_page_and_total_of_its_own() -> None:
    users = [UserFactory(username=f"u{n}") for n in range(6)]
    for n, user in enumerate(users):
        ledger_award(user_id=user.pk, delta=10 * (n + 1))
    first = selectors.leaderboard_page(offset=0, limit=2)
    second = selectors.leaderboard_page(offset=2, limit=2)
    assert [e["username"] for e in first["entries"]] == ["u5", "u4"]
    assert [e["rank"] for e in second["entries"]] == [3, 4]
    assert [e["username"] for e in second["entries"]] == ["u3", "u2"]
    assert selectors.leaderboard_page(offset=0, limit=2) == first
    assert first["total"] == second["total"] == 6


def test_a_ban_and_a_rebuild_are_seen_by_the_next_read() -> None:
    alice, mallory = UserFactory(username="alice"), UserFactory(username="mallory")
    ledger_award(user_id=alice.pk, delta=5)
    ledger_award(user_id=mallory.pk, delta=50)
    assert board() == [("mallory", 50), ("alice", 5)]
    User.objects.filter(pk=mallory.pk).update(is_banned=True)
    services.leaderboard_user_changed(user=User.objects.get(pk=mallory.pk))
    assert board() == [("alice", 5)]

    # The index is lost and rebuilt from PostgreSQL, with a score the index never saw.
    index = RedisIndex()
    for key in index.client.scan_iter(match=f"{index.base}:*"):
        index.client.delete(key)
    User.objects.filter(pk=alice.pk).update(score=7)
    call_command("rebuild_leaderboard", verbosity=0)
    assert board() == [("alice", 7)]


def test_a_read_never_mixes_one_version_with_another_board() -> None:
    """Threads read while a writer changes the board: every answer's entries are the
    board of the version it names, the same one for every read of that version."""
    users = [UserFactory(username=f"p{n}") for n in range(5)]
    for user in users:
        ledger_award(user_id=user.pk, delta=1)
    seen: dict[int, list[list[tuple[str, int]]]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []

    def read() -> None:
        deadline = time.monotonic() + 20
        try:
            while not stop.is_set() and time.monotonic() < deadline:
                page = selectors.leaderboard_page(offset=0, limit=5)
                entries = [(e["username"], e["score"]) for e in page["entries"]]
                with lock:
                    seen.setdefault(page["version"], []).append(entries)
        except BaseException as exc:  # reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(4)]
    for reader in readers:
        reader.start()
    try:
        for n in range(60):
            ledger_award(user_id=users[n % 5].pk, delta=n + 1)
    finally:
        stop.set()
        for reader in readers:
            reader.join(timeout=30)
    assert not errors
    assert sum(len(pages) for pages in seen.values()) > 60
    assert len(seen) > 5  # the readers saw the board change under them
    for version, pages in seen.items():
        assert all(page == pages[0] for page in pages), version
        assert [score for _, score in pages[0]] == sorted(
            (score for _, score in pages[0]), reverse=True
        )
    assert board(5) == list(User.objects.ranked().values_list("username", "score")[:5])


def test_it_holds_a_bounded_number_of_pages() -> None:
    memory = PageMemory(size=3)
    page = HeldPage(tag=b"g:1", entries=(), total=0, version=1)
    for offset in range(10):
        memory.put(("lb", offset, 10), page)
        assert len(memory._pages) <= 3
    assert memory.get(("lb", 9, 10)) is page
