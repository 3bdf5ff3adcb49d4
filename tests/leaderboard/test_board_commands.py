"""The boards' management commands (SPEC "Operations"): create_board, close_periods,
end_season, export_standings, rebuild_leaderboard --board and check_consistency over
periods; and seed_demo's boards."""

from __future__ import annotations

import csv
from datetime import time, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import User
from leaderboard.boards import board_save
from leaderboard.closing import checksum_of, standings_from_ledger
from leaderboard.models import Board, Period, PeriodScore, Standing
from leaderboard.period_index import IndexColdError, period_index, period_index_drop
from leaderboard.periods import span_at
from scoreboard.services import ledger_award

pytestmark = pytest.mark.django_db(transaction=True)


def run(*args: str) -> str:
    out = StringIO()
    call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def daily(click):  # type: ignore[no-untyped-def]
    board, _ = board_save(slug="daily", title="Today", period="day")
    return board


@pytest.fixture
def yesterday(daily, alice, bob) -> Period:  # type: ignore[no-untyped-def]
    """Yesterday's period of `daily`, ended, with alice 10 and bob 5 in it."""
    at = timezone.now() - timedelta(days=1)
    ledger_award(user_id=alice.pk, delta=10, action_id="click", at=at)
    ledger_award(user_id=bob.pk, delta=5, action_id="click", at=at)
    span = span_at(daily.rule, at)
    assert span is not None
    return Period.objects.get(board=daily, key=span.key)


@pytest.mark.parametrize(
    "name",
    [
        "create_board",
        "close_periods",
        "end_season",
        "export_standings",
        "rebuild_leaderboard",
        "check_consistency",
    ],
)
def test_it_explains_each_command(name: str, capsys) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exited:
        call_command(name, "--help")
    assert exited.value.code == 0
    assert "usage:" in capsys.readouterr().out


# create_board


def test_it_creates_then_updates_a_board(click) -> None:  # type: ignore[no-untyped-def]
    out = run(
        "create_board",
        "--slug=weekly",
        "--title=This week",
        "--period=week",
        "--timezone=Europe/Paris",
        "--week-starts-on=7",
        "--day-starts-at=04:30",
        "--actions=click,quiz",
    )
    assert "Created board weekly: week in Europe/Paris, counting click, quiz" in out
    board = Board.objects.get(slug="weekly")
    assert (board.week_starts_on, board.day_starts_at, board.action_types) == (
        7,
        time(4, 30),
        ["click", "quiz"],
    )
    out = run("create_board", "--slug=weekly", "--title=Week", "--period=week", "--inactive")
    assert "Updated board weekly" in out
    board.refresh_from_db()
    assert (board.title, board.timezone, board.is_active) == ("Week", "Europe/Paris", False)


def test_it_creates_a_season(db) -> None:  # type: ignore[no-untyped-def]
    run(
        "create_board",
        "--slug=spring",
        "--title=Spring",
        "--period=season",
        "--starts-at=2026-03-01T00:00:00Z",
        "--ends-at=2026-06-01T00:00:00+02:00",
    )
    board = Board.objects.get(slug="spring")
    assert board.ends_at is not None
    assert board.ends_at.isoformat() == "2026-05-31T22:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period=day", "--timezone=Mars/Olympus"], "Invalid board. (period: "),
        (["--period=week", "--week-starts-on=8"], "week_starts_on"),
        (["--period=season"], "A season needs both starts_at and ends_at"),
        (
            ["--period=season", "--starts-at=2026-03-01T00:00", "--ends-at=2026-04-01T00:00"],
            "aware datetime",
        ),
    ],
)
def test_it_refuses_an_invalid_board_with_its_reasons(db, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="Board b1 not saved") as refused:
        run("create_board", "--slug=b1", "--title=B", *args)
    assert message in str(refused.value)
    assert not Board.objects.filter(slug="b1").exists()


def test_it_refuses_a_malformed_option(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="HH:MM"):
        run("create_board", "--slug=b1", "--title=B", "--period=day", "--day-starts-at=4h")


def test_it_refuses_new_rules_once_a_board_has_entries(daily, alice) -> None:  # type: ignore[no-untyped-def]
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    with pytest.raises(CommandError, match=r"has entries.*fields: timezone"):
        run("create_board", "--slug=daily", "--title=T", "--period=day", "--timezone=Asia/Tokyo")
    assert "Updated" in run("create_board", "--slug=daily", "--title=Today!", "--period=day")


# close_periods


def test_it_closes_what_ended_once(yesterday) -> None:  # type: ignore[no-untyped-def]
    out = run("close_periods")
    yesterday.refresh_from_db()
    assert yesterday.state == Period.State.CLOSED
    assert yesterday.checksum == checksum_of(standings_from_ledger(yesterday))
    assert out.strip() == (
        f"closed daily {yesterday.key}: 2 participants, revision 1, checksum {yesterday.checksum}"
    )
    assert run("close_periods", "--board=daily").strip() == "nothing to close"


def test_it_revises_closed_standings_on_demand(yesterday, alice) -> None:  # type: ignore[no-untyped-def]
    run("close_periods")
    # A ban written behind the services' back: no revision was queued for it.
    User.objects.filter(pk=alice.pk).update(is_banned=True)
    out = run("close_periods", "--revise")
    yesterday.refresh_from_db()
    assert f"revised daily {yesterday.key}: revision 2, 1 participants" in out
    assert yesterday.revisions.get(revision=2).cause == "close_periods --revise"
    assert "no standings changed" in run("close_periods", "--revise", "--board=daily")


def test_it_refuses_an_unknown_board_to_close(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="No board nope"):
        run("close_periods", "--board=nope")
    with pytest.raises(CommandError, match="never closes"):
        run("close_periods", "--board=global")


# end_season


@pytest.fixture
def season(click, alice):  # type: ignore[no-untyped-def]
    now = timezone.now()
    board, _ = board_save(
        slug="s1",
        title="Season 1",
        period="season",
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=1),
    )
    ledger_award(user_id=alice.pk, delta=7, action_id="click")
    return board


def test_it_ends_a_season_and_leaves_the_close_to_the_grace(season) -> None:  # type: ignore[no-untyped-def]
    out = run("end_season", "s1")
    assert "Ended season s1 at" in out
    assert "closed within 2 seconds" in out
    season.refresh_from_db()
    assert season.ended_early_at is not None
    period = Period.objects.get(board=season, key="s1")
    assert (period.state, period.ends_at) == (Period.State.OPEN, season.ends_at)


def test_it_closes_an_ended_season_once_its_grace_has_passed(season, settings) -> None:  # type: ignore[no-untyped-def]
    settings.BOARDS_CLOSE_GRACE_SECONDS = 0
    out = run("end_season", "s1")
    assert "closed s1 s1: 1 participants, revision 1" in out
    assert Period.objects.get(board=season, key="s1").state == Period.State.CLOSED


def test_it_refuses_to_end_what_is_not_a_running_season(season, daily) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="No such board"):
        run("end_season", "nope")
    with pytest.raises(CommandError, match="Only a season"):
        run("end_season", "daily")
    run("end_season", "s1")
    with pytest.raises(CommandError, match="already ended"):
        run("end_season", "s1")


# export_standings


def test_it_exports_closed_standings(yesterday, alice, bob, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("close_periods")
    out = run("export_standings", "daily", yesterday.key)
    rows = list(csv.reader(StringIO(out)))
    assert rows[0] == ["rank", "userId", "username", "score", "reachedAt"]
    assert [(r[0], r[1], r[2], r[3]) for r in rows[1:]] == [
        ("1", str(alice.pk), "alice", "10"),
        ("2", str(bob.pk), "bob", "5"),
    ]
    target = tmp_path / "standings.csv"
    written = run("export_standings", "daily", yesterday.key, f"--output={target}")
    assert "Wrote 2 standings of daily" in written
    assert target.read_bytes().decode() == out  # the same CRLF lines as the endpoint


def test_it_refuses_to_export_what_is_not_closed(yesterday) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="not final"):
        run("export_standings", "daily", yesterday.key)
    with pytest.raises(CommandError, match="no period 1999-01-01"):
        run("export_standings", "daily", "1999-01-01")
    with pytest.raises(CommandError, match="No board nope"):
        run("export_standings", "nope", yesterday.key)


# rebuild_leaderboard


@pytest.fixture
def today(daily, alice) -> Period:  # type: ignore[no-untyped-def]
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    return _current(daily)


def _current(board: Board) -> Period:
    span = span_at(board.rule, timezone.now())
    assert span is not None
    return Period.objects.get(board=board, key=span.key)


def test_it_rebuilds_every_held_period_and_the_global_index(today, alice) -> None:  # type: ignore[no-untyped-def]
    period_index_drop(today.pk)
    with pytest.raises(IndexColdError):
        period_index(today.pk).rank(user_id=alice.pk)
    out = run("rebuild_leaderboard")
    assert "Leaderboard index rebuilt: 1 ranked users." in out
    assert f"daily {today.key} index rebuilt: 1 ranked users." in out
    assert period_index(today.pk).rank(user_id=alice.pk) == (1, 5)


def test_it_rebuilds_one_boards_periods(today, alice) -> None:  # type: ignore[no-untyped-def]
    period_index_drop(today.pk)
    out = run("rebuild_leaderboard", "--board=daily")
    assert out.strip() == f"daily {today.key} index rebuilt: 1 ranked users."
    assert period_index(today.pk).rank(user_id=alice.pk) == (1, 5)
    assert run("rebuild_leaderboard", "--board=global").strip() == (
        "Leaderboard index rebuilt: 1 ranked users."
    )
    with pytest.raises(CommandError, match="No board nope"):
        run("rebuild_leaderboard", "--board=nope")


# check_consistency


def test_it_finds_every_period_consistent(today, yesterday) -> None:  # type: ignore[no-untyped-def]
    run("close_periods")  # yesterday closes; today's index is warm
    assert "Consistent: 2 users and 2 periods checked." in run("check_consistency")


def test_it_finds_and_repairs_a_drifted_period_total(today, alice) -> None:  # type: ignore[no-untyped-def]
    run("rebuild_leaderboard", "--board=daily")
    PeriodScore.objects.filter(period=today, user=alice).update(score=999)
    out = StringIO()
    with pytest.raises(CommandError, match="and 2 period mismatches"):
        call_command("check_consistency", stdout=out)
    text = out.getvalue()
    assert f"score: daily {today.key}: user {alice.pk} total 999 != credits sum 5" in text
    assert f"index: daily {today.key}: alice expected 999, index has 5" in text
    repaired = run("check_consistency", "--repair")
    assert f"Repaired daily {today.key}: 1 totals reset to the credits" in repaired
    assert PeriodScore.objects.get(period=today, user=alice).score == 5
    assert "Consistent" in run("check_consistency")


def test_it_finds_and_repairs_a_lost_period_index(today, alice) -> None:  # type: ignore[no-untyped-def]
    run("rebuild_leaderboard", "--board=daily")
    period_index_drop(today.pk)
    out = StringIO()
    with pytest.raises(CommandError, match="Inconsistent"):
        call_command("check_consistency", stdout=out)
    assert f"index: daily {today.key}: cold" in out.getvalue()
    run("check_consistency", "--repair")
    assert period_index(today.pk).rank(user_id=alice.pk) == (1, 5)
    assert "Consistent" in run("check_consistency")


def test_it_reports_closed_standings_that_no_longer_match_their_checksum(  # type: ignore[no-untyped-def]
    yesterday, alice
) -> None:
    run("close_periods")
    Standing.objects.filter(period=yesterday, user=alice).update(score=11)
    out = StringIO()
    with pytest.raises(CommandError, match="Inconsistent"):
        call_command("check_consistency", stdout=out)
    assert f"checksum: daily {yesterday.key}: revision 1 standings hash to" in out.getvalue()
    out = StringIO()
    with pytest.raises(CommandError, match="1 period mismatches remain"):
        call_command("check_consistency", "--repair", stdout=out)
    assert "remains: checksum" in out.getvalue()


# seed_demo


def test_seed_demo_creates_its_boards_once(db) -> None:  # type: ignore[no-untyped-def]
    assert "3 boards created" in run("seed_demo")
    assert "0 users, 0 action types and 0 boards created" in run("seed_demo")
    boards = {b.slug: b for b in Board.objects.all()}
    assert set(boards) == {"global", "daily", "weekly", "quizzers"}
    assert (boards["daily"].period, boards["daily"].timezone) == ("day", "UTC")
    weekly = boards["weekly"]
    assert (weekly.period, weekly.timezone, weekly.week_starts_on) == ("week", "Europe/Paris", 1)
    assert (boards["quizzers"].period, boards["quizzers"].action_types) == ("all_time", ["quiz"])
