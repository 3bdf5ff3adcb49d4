"""A cold index (never built, or Redis lost its data): reads answer from PostgreSQL, one
rebuild runs, and nobody sees or is pushed an empty or partial board."""

from __future__ import annotations

import asyncio
import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connections
from django.utils import timezone

from accounts.models import User
from config.asgi import application
from leaderboard import broadcast, bus, rebuild, selectors
from leaderboard.index import IndexColdError, RedisIndex
from scoreboard.services import ledger_award
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)
ORIGIN = (b"origin", b"http://127.0.0.1")


def flush_run_keys() -> None:
    """What a Redis restart without its data does to this run's keys (and only to them)."""
    client = RedisIndex().client
    keys = list(client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*", count=1000))
    if keys:
        client.delete(*keys)


def db_board() -> list[tuple[str, int]]:
    return list(User.objects.ranked().values_list("username", "score"))


def board() -> list[tuple[str, int]]:
    return [(e["username"], e["score"]) for e in selectors.leaderboard_top(n=100)]


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


@pytest.fixture
def rebuilds(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Counts real rebuilds (the thread each ran in) without changing what they do."""
    calls: list[str] = []
    real = rebuild._rebuild_holding_lock

    def counted(index: RedisIndex, token: str) -> int:
        calls.append(threading.current_thread().name)
        return real(index, token)

    monkeypatch.setattr(rebuild, "_rebuild_holding_lock", counted)
    return calls


@pytest.fixture
def in_background(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat every board as big: rebuilds run in a background thread, as at 1M users."""
    monkeypatch.setattr(rebuild, "INLINE_REBUILD_MAX_USERS", 0)


@pytest.fixture
def players() -> list[User]:
    users = [UserFactory(username=f"p{n:02d}") for n in range(12)]
    for n, user in enumerate(users):
        ledger_award(user_id=user.pk, delta=(n % 4) + 1)
    rebuild.leaderboard_rebuild()
    return users


def test_it_reads_postgres_and_rebuilds_once_when_the_index_is_cold(players, rebuilds) -> None:  # type: ignore[no-untyped-def]
    expected = db_board()
    flush_run_keys()
    with pytest.raises(IndexColdError):
        RedisIndex().page(offset=0, limit=10)
    assert board() == expected  # from PostgreSQL, same order; starts the rebuild
    assert rebuilds == [threading.current_thread().name]  # a small board: at once
    assert RedisIndex().is_ready()
    assert board() == expected  # from the index now
    assert selectors.leaderboard_rank_of(user_id=players[3].pk) == 1
    assert len(rebuilds) == 1


def test_it_rebuilds_a_big_board_in_the_background(players, rebuilds, in_background) -> None:  # type: ignore[no-untyped-def]
    expected = db_board()
    flush_run_keys()
    assert board() == expected
    assert selectors.leaderboard_rank_of(user_id=players[3].pk) == 1  # also from PostgreSQL
    wait_until(RedisIndex().is_ready)
    assert rebuilds == ["leaderboard-rebuild"]
    assert board() == expected


def test_it_keeps_writes_to_a_cold_index_pending_without_making_it_look_complete(players) -> None:  # type: ignore[no-untyped-def]
    flush_run_keys()
    index = RedisIndex()
    late = players[0]
    now = timezone.now()
    assert not index.apply(
        user_id=late.pk, username=late.username, score=99, reached_at=now, entry_id=10**9,
        ranked=True,
    )  # fmt: skip
    assert not index.is_ready()
    with pytest.raises(IndexColdError):
        index.page(offset=0, limit=10)
    with pytest.raises(IndexColdError):
        index.rank(user_id=late.pk)
    rebuild.leaderboard_rebuild()
    # the pending write is newer than what PostgreSQL had (entry id): it wins
    assert index.rank(user_id=late.pk) == (1, 99)


def test_it_keeps_a_write_made_while_a_rebuild_runs(players) -> None:  # type: ignore[no-untyped-def]
    index = RedisIndex()
    newcomer = UserFactory(username="newcomer")
    now = timezone.now()
    rows = [(p.pk.bytes, p.username, p.score, 0, 1) for p in User.objects.rankable()]

    def rows_with_a_write_half_way() -> Iterator[tuple[Any, ...]]:
        for n, row in enumerate(rows):
            if n == 5:  # a completion's index update lands while the rebuild streams
                index.apply(
                    user_id=newcomer.pk, username="newcomer", score=50, reached_at=now,
                    entry_id=10**9, ranked=True,
                )  # fmt: skip
            yield row

    index.replace(rows_with_a_write_half_way())
    assert index.rank(user_id=newcomer.pk) == (1, 50)
    assert not index.client.exists(index.keys["pending"], index.keys["building"])


def test_it_never_pushes_a_board_read_from_a_cold_index(players) -> None:  # type: ignore[no-untyped-def]
    assert broadcast.tick() is not None  # the board as pushed so far
    flush_run_keys()
    index = RedisIndex()
    index.client.set(index.keys["dirty"], repr(time.time()))  # a change waits to be pushed
    assert broadcast.tick() is None  # cold: nothing pushed; the read started the rebuild
    assert index.is_ready()
    index.client.delete(bus.bus_keys()["tick"])  # the next interval
    pushed = broadcast.tick()
    assert pushed is not None
    update = json.loads(pushed)
    assert [(e["username"], e["score"]) for e in update["entries"]] == db_board()[:10]


def test_it_says_so_when_check_consistency_finds_the_index_cold(players, capsys) -> None:  # type: ignore[no-untyped-def]
    flush_run_keys()
    with pytest.raises(CommandError, match="Inconsistent"):
        call_command("check_consistency")
    assert "cold" in capsys.readouterr().out
    call_command("check_consistency", "--repair")
    call_command("check_consistency")


async def test_it_survives_a_flush_under_load_without_an_empty_or_short_board(  # type: ignore[no-untyped-def]
    players, rebuilds, in_background
) -> None:
    """Completions and reads run in threads; the index's keys are flushed once; a
    WebSocket viewer watches. No read has fewer entries than the users whose completion
    was acknowledged before it started, the index is rebuilt exactly once, and the viewer
    never gets an empty or short board."""
    newcomers = [await asyncio.to_thread(UserFactory, username=f"n{n:02d}") for n in range(10)]
    everyone = [*players, *newcomers]
    ranked_before = len(players)
    acknowledged: set[Any] = {p.pk for p in players}
    lock = threading.Lock()
    stop = threading.Event()
    problems: list[str] = []
    reads = [0]

    def writer(seed: int) -> None:
        rng = random.Random(seed)
        try:
            while not stop.is_set():
                user = rng.choice(everyone)
                ledger_award(user_id=user.pk, delta=rng.randint(1, 5))
                with lock:
                    acknowledged.add(user.pk)
                time.sleep(0.005)
        finally:
            connections.close_all()

    def reader() -> None:
        try:
            while not stop.is_set():
                with lock:
                    at_least = len(acknowledged)
                page = selectors.leaderboard_page(offset=0, limit=100)
                reads[0] += 1
                if len(page["entries"]) < at_least or page["total"] < at_least:
                    problems.append(f"read {len(page['entries'])} < {at_least} acknowledged")
                scores = [e["score"] for e in page["entries"]]
                if scores != sorted(scores, reverse=True):
                    problems.append("out of order")
        finally:
            connections.close_all()

    communicator = WebsocketCommunicator(application, "/ws/leaderboard/", headers=[ORIGIN])
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    frames: list[dict[str, Any]] = []

    async def watch(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        last_resync = 0.0
        while (left := deadline - time.monotonic()) > 0:
            if time.monotonic() - last_resync > 0.4:  # snapshots during the cold spell too
                await communicator.send_to(text_data='{"type": "resync"}')
                last_resync = time.monotonic()
            try:
                # not receive_from(): its timeout would cancel the application
                message = await asyncio.wait_for(communicator.output_queue.get(), min(left, 0.2))
            except TimeoutError:
                continue
            assert message["type"] == "websocket.send", message
            frames.append(json.loads(message["text"]))

    threads = [threading.Thread(target=writer, args=(seed,)) for seed in range(2)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        await watch(0.5)
        await asyncio.to_thread(flush_run_keys)
        await watch(3.0)
    finally:
        stop.set()
        for thread in threads:
            await asyncio.to_thread(thread.join)
    await asyncio.to_thread(wait_until, RedisIndex().is_ready)
    await communicator.disconnect()

    assert problems == []
    assert reads[0] > 20
    assert rebuilds == ["leaderboard-rebuild"]
    boards = [f for f in frames if f["type"] in ("leaderboard.snapshot", "leaderboard.update")]
    assert len(boards) > 5
    assert all(len(f["entries"]) >= min(ranked_before, 10) for f in boards)
    assert await asyncio.to_thread(board) == await asyncio.to_thread(db_board)
