"""Closing periods on real PostgreSQL and Redis: standings equal to the ledger, a checksum
anyone can recompute, catch-up after downtime, revisions, and the boundary race."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone

from core.errors import ServiceUnavailableError
from leaderboard.boards import board_save
from leaderboard.closing import checksum_of, periods_close_due, standings_from_ledger
from leaderboard.models import Board, Period, PeriodRevision, Standing
from leaderboard.period_index import period_index
from scoreboard.models import ScoreEntry
from scoreboard.services import ledger_award, ledger_lock, ledger_reverse
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def standings(period: Period) -> list[tuple[int, object, int, datetime]]:
    rows = Standing.objects.filter(period=period, revision=period.revision).order_by("rank")
    return list(rows.values_list("rank", "user_id", "score", "reached_at"))


def test_a_closed_period_has_the_ledgers_standings_and_checksum() -> None:
    now = timezone.now()
    board, _ = board_save(
        slug="s1",
        title="Season",
        period="season",
        starts_at=now - timedelta(hours=2),
        ends_at=now - timedelta(seconds=30),
    )
    users = [UserFactory(username=f"p{i}") for i in range(6)]
    inside = now - timedelta(minutes=30)
    for i, user in enumerate(users):
        ledger_award(user_id=user.pk, delta=10 * (i % 3 + 1), action_id="click", at=inside)
    # A tie on score: whoever reached it first ranks higher.
    ledger_award(user_id=users[0].pk, delta=20, action_id="click", at=inside + timedelta(minutes=1))
    # Before the season and after it: not counted.
    ledger_award(user_id=users[1].pk, delta=500, action_id="click", at=now - timedelta(hours=3))
    ledger_award(user_id=users[1].pk, delta=500, action_id="click", at=now)
    closed = periods_close_due(board="s1")
    assert [(c.board, c.key, c.revision, c.participants) for c in closed] == [("s1", "s1", 1, 6)]
    period = Period.objects.get(board=board)
    assert period.state == "closed"
    assert standings(period) == standings_from_ledger(period)
    assert checksum_of(standings_from_ledger(period)) == period.checksum == closed[0].checksum
    # Three on 30 points: the two who reached it at the same instant by user id, then the
    # one who reached it a minute later.
    tied = sorted([users[2].pk, users[5].pk], key=str)
    assert [(row[1], row[2]) for row in standings(period)[:3]] == [
        (tied[0], 30),
        (tied[1], 30),
        (users[0].pk, 30),
    ]
    # Idempotent: nothing more to close, the revision stays.
    assert periods_close_due(board="s1") == []
    assert PeriodRevision.objects.filter(period=period).count() == 1
    # Served from PostgreSQL once closed; its index is gone from Redis.
    assert not period_index(period.pk).is_ready()


def test_a_reversal_and_a_ban_into_a_closed_period_write_new_revisions() -> None:
    from fraud.services import user_set_banned

    now = timezone.now()
    board, _ = board_save(
        slug="s2",
        title="Season",
        period="season",
        starts_at=now - timedelta(hours=2),
        ends_at=now - timedelta(seconds=30),
    )
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    inside = now - timedelta(minutes=30)
    cheat = ledger_award(user_id=bob.pk, delta=90, action_id="click", at=inside).entry
    ledger_award(user_id=alice.pk, delta=40, action_id="click", at=inside)
    ledger_award(user_id=carol.pk, delta=30, action_id="click", at=inside)
    periods_close_due(board="s2")
    period = Period.objects.get(board=board)
    first = period.checksum
    assert [row[1] for row in standings(period)] == [bob.pk, alice.pk, carol.pk]

    ledger_reverse(entry=cheat, note="scripted")  # after commit: the revision task (eager)
    period.refresh_from_db()
    assert period.revision == 2
    assert [row[1] for row in standings(period)] == [alice.pk, carol.pk]
    assert period.checksum == checksum_of(standings_from_ledger(period)) != first
    revision = PeriodRevision.objects.get(period=period, revision=2)
    assert "ledger entry" in revision.cause
    assert revision.participants == 2
    # Revision 1 is kept as it was.
    assert Standing.objects.filter(period=period, revision=1).count() == 3

    user_set_banned(user=alice, banned=True, admin=None, actor="desk-test", reason="test")
    period.refresh_from_db()
    assert period.revision == 3
    assert [row[1] for row in standings(period)] == [carol.pk]
    assert "ban of alice" in PeriodRevision.objects.get(period=period, revision=3).cause
    assert period.checksum == checksum_of(standings_from_ledger(period))


def test_periods_that_ended_while_nothing_ran_are_all_closed_in_order_once() -> None:
    now = timezone.now()
    board, _ = board_save(slug="daily", title="Today", period="day")
    Board.objects.filter(pk=board.pk).update(created_at=now - timedelta(days=5))
    user = UserFactory(username="steady")
    today = now.astimezone(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    for days in range(1, 6):
        ledger_award(
            user_id=user.pk, delta=days, action_id="click", at=today - timedelta(days=days)
        )
    results: list[list[object]] = []

    def close() -> None:
        try:
            results.append(periods_close_due(board="daily"))  # type: ignore[arg-type]
        finally:
            connections.close_all()

    closers = [threading.Thread(target=close) for _ in range(2)]
    for closer in closers:
        closer.start()
    for closer in closers:
        closer.join(timeout=60)
    closed = [c for found in results for c in found]  # type: ignore[attr-defined]
    keys = sorted(c.key for c in closed)  # type: ignore[attr-defined]
    expected = [(today - timedelta(days=d)).date().isoformat() for d in range(5, 0, -1)]
    assert keys == expected  # each ended day closed once, by one of the two closers
    for found in results:
        assert [c.key for c in found] == sorted(c.key for c in found)  # type: ignore[attr-defined]
    periods = Period.objects.filter(board=board, state="closed").order_by("starts_at")
    assert [p.key for p in periods] == expected
    assert [p.participants for p in periods] == [1, 1, 1, 1, 1]
    assert all(PeriodRevision.objects.filter(period=p).count() == 1 for p in periods)
    assert Period.objects.get(board=board, state="open").key == today.date().isoformat()


def test_a_flushed_redis_answers_every_open_period_from_postgresql_and_rebuilds_once(
    api_client,
    settings,  # type: ignore[no-untyped-def]
) -> None:
    import redis

    board_save(slug="daily", title="Today", period="day")
    board_save(slug="weekly", title="Week", period="week", timezone="Europe/Paris")
    users = [UserFactory(username=f"f{i}") for i in range(5)]
    for i, user in enumerate(users):
        ledger_award(user_id=user.pk, delta=5 + i, action_id="click")
    before = {
        slug: api_client.get(f"/api/v1/boards/{slug}/entries/").json()["entries"]
        for slug in ("daily", "weekly")
    }
    assert [e["score"] for e in before["daily"]] == [9, 8, 7, 6, 5]
    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*", count=1000):
        client.delete(key)
    for period in Period.objects.filter(state="open"):
        assert not period_index(period.pk).is_ready()
    for slug in ("daily", "weekly"):
        assert api_client.get(f"/api/v1/boards/{slug}/entries/").json()["entries"] == before[slug]
    for period in Period.objects.filter(state="open"):
        assert period_index(period.pk).is_ready()  # rebuilt by the first read
    client.close()


def test_completions_racing_the_boundary_land_in_their_periods_standings(settings) -> None:
    """Writers complete continuously across a season's end while the closer runs with no
    grace: every completion accepted before the end is in the standings (also those still
    in flight when the end passed), none after it, and the checksum is the ledger's."""
    settings.BOARDS_CLOSE_GRACE_SECONDS = 0
    now = timezone.now()
    end = now + timedelta(seconds=1.5)
    board, _ = board_save(
        slug="race", title="Race", period="season", starts_at=now - timedelta(hours=1), ends_at=end
    )
    users = [UserFactory(username=f"r{i}") for i in range(6)]
    stop = time.monotonic() + 3.5
    accepted: list[tuple[datetime, datetime]] = []  # (accepted instant, committed)
    refused: list[str] = []

    def writer(index: int) -> None:
        user = users[index]
        try:
            for n in range(400):
                if time.monotonic() > stop:
                    break
                try:
                    with transaction.atomic():
                        row = ledger_lock(user_id=user.pk, add=1)
                        time.sleep(0.02 * (n % 3))  # some are slow between accept and credit
                        ledger_award(user_id=user.pk, locked=row.user, delta=1, action_id="click")
                        time.sleep(0.02 * ((n + 1) % 3))  # and between credit and commit
                    assert row.user.at is not None
                    accepted.append((row.user.at, timezone.now()))
                except ServiceUnavailableError as exc:
                    refused.append(exc.code)
        finally:
            connections.close_all()

    closed: list[object] = []

    def closer() -> None:
        try:
            for _ in range(400):
                if time.monotonic() > stop:
                    break
                closed.extend(periods_close_due(board="race"))
                time.sleep(0.01)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(len(users))]
    threads.append(threading.Thread(target=closer))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    period = Period.objects.get(board=board)
    assert period.state == "closed"
    assert len(closed) == 1
    in_period = [a for a, _ in accepted if a < end]
    assert in_period
    assert any(a >= end for a, _ in accepted)
    # Some were accepted before the end and committed after it: the race really happened.
    assert any(a < end <= committed for a, committed in accepted)
    assert set(refused) <= {"period_closing"}
    total = sum(row[2] for row in standings(period))
    assert total == len(in_period)
    assert ScoreEntry.objects.filter(created_at__lt=end, action_id="click").count() == len(
        in_period
    )
    assert standings(period) == standings_from_ledger(period)
    assert period.checksum == checksum_of(standings_from_ledger(period))
