"""Boards: a completion credits every board that counts it, in its transaction and in one
Redis script; the REST contract of SPEC "Boards and periods"."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from leaderboard.boards import BoardRulesFrozenError, board_save
from leaderboard.models import Board, Period, PeriodCredit, PeriodScore
from leaderboard.period_index import period_index
from leaderboard.periods import span_at
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def boards(click):  # type: ignore[no-untyped-def]
    ActionTypeFactory(id="quiz", reward=7)
    board_save(slug="daily", title="Today", period="day")
    board_save(slug="weekly", title="This week", period="week", timezone="Europe/Paris")
    board_save(slug="monthly", title="This month", period="month")
    board_save(slug="quizzers", title="Quiz", period="all_time", action_types=["quiz"])


def test_a_completion_counts_on_every_board_that_counts_its_action(  # type: ignore[no-untyped-def]
    boards, client_for, start, complete, alice, bob
) -> None:
    bob_client = client_for(bob)
    assert complete(bob_client, "click", start(bob_client, "click")).status_code == 200
    client = client_for(alice)
    for _ in range(2):
        response = complete(client, "click", start(client, "click"))
        assert response.status_code == 200, response.content
    body = response.json()
    now = timezone.now()
    day = span_at(Board.objects.get(slug="daily").rule, now)
    assert day is not None
    assert (body["newScore"], body["rank"]) == (10, 1), body
    assert {b["board"]: (b["period"], b["score"], b["rank"]) for b in body["boards"]} == {
        "daily": (day.key, 10, 1),
        "weekly": (span_at(Board.objects.get(slug="weekly").rule, now).key, 10, 1),  # type: ignore[union-attr]
        "monthly": (now.strftime("%Y-%m"), 10, 1),
    }
    # The quiz board does not count clicks; a quiz counts on it and on the calendar boards.
    quiz = complete(client, "quiz", start(client, "quiz")).json()
    assert {b["board"]: b["score"] for b in quiz["boards"]} == {
        "daily": 17,
        "weekly": 17,
        "monthly": 17,
        "quizzers": 7,
    }
    assert PeriodCredit.objects.filter(user=alice).count() == 3 + 3 + 4
    daily = Period.objects.get(board__slug="daily")
    assert PeriodScore.objects.get(period=daily, user=alice).score == 17
    assert period_index(daily.pk).rank(user_id=alice.pk) == (1, 17)
    assert period_index(daily.pk).rank(user_id=bob.pk) == (2, 5)


def test_the_board_endpoints_answer_the_contract(  # type: ignore[no-untyped-def]
    boards, api_client, client_for, start, complete, alice
) -> None:
    client = client_for(alice)
    complete(client, "quiz", start(client, "quiz"))
    listing = api_client.get("/api/v1/boards/").json()
    slugs = [b["slug"] for b in listing["boards"]]
    assert slugs[0] == "global"
    assert set(slugs) == {
        "global",
        "daily",
        "weekly",
        "monthly",
        "quizzers",
    }
    daily = next(b for b in listing["boards"] if b["slug"] == "daily")
    assert daily["current"]["endsAt"] == daily["nextResetAt"]
    assert daily["actionTypes"] is None
    assert daily["timezone"] == "UTC"
    assert "serverTime" in listing

    detail = api_client.get("/api/v1/boards/weekly/").json()
    assert detail["weekStartsOn"] == 1
    assert detail["previous"]["state"] in ("closing", "closed")

    page = api_client.get("/api/v1/boards/quizzers/entries/").json()
    assert page["board"] == "quizzers"
    assert page["period"]["key"] == "all"
    assert page["period"]["state"] == "open"
    assert [(e["username"], e["score"], e["rank"]) for e in page["entries"]] == [("alice", 7, 1)]
    assert page["total"] == 1

    me = client.get("/api/v1/boards/daily/me/?radius=0").json()
    assert me["me"] == {"rank": 1, "score": 7}
    user = api_client.get(f"/api/v1/boards/daily/users/{alice.pk}/").json()
    assert (user["rank"], user["score"]) == (1, 7)

    glob = api_client.get("/api/v1/boards/global/entries/?limit=5").json()
    assert glob["period"]["key"] == "all"
    assert glob["entries"] == api_client.get("/api/v1/leaderboard/?limit=5").json()["entries"]


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/boards/nope/", 404, "board_not_found"),
        ("/api/v1/boards/nope/entries/", 404, "board_not_found"),
        ("/api/v1/boards/daily/entries/?period=2020-01-01", 404, "period_not_found"),
        ("/api/v1/boards/daily/entries/?period=2099-01-01", 404, "period_not_found"),
        ("/api/v1/boards/daily/entries/?period=yesterday", 400, "invalid"),
        ("/api/v1/boards/daily/entries/?period=2026-13-01", 400, "invalid"),
        ("/api/v1/boards/weekly/entries/?period=2026-12-01", 400, "invalid"),  # a Tuesday
        ("/api/v1/boards/quizzers/entries/?period=previous", 404, "period_not_found"),
        ("/api/v1/boards/daily/entries/?limit=0", 400, "invalid"),
        ("/api/v1/boards/daily/periods/?before=x", 400, "invalid"),
        ("/api/v1/boards/daily/periods/2026-01-01/standings.csv", 401, "not_authenticated"),
    ],
)
def test_bad_boards_and_periods_get_clear_errors(  # type: ignore[no-untyped-def]
    boards, api_client, path, status, code
) -> None:
    response = api_client.get(path)
    assert response.status_code == status, response.content
    assert response.json()["error"]["code"] == code


def test_board_definitions_are_validated(db) -> None:  # type: ignore[no-untyped-def]
    from core.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="Invalid board"):
        board_save(slug="b1", title="B", period="day", timezone="Mars/Olympus")
    start = datetime(2026, 6, 1, tzinfo=UTC)
    with pytest.raises(InvalidInputError):
        board_save(slug="b2", title="B", period="season", starts_at=start, ends_at=start)
    with pytest.raises(InvalidInputError):
        board_save(slug="b3", title="B", period="week", week_starts_on=8)
    with pytest.raises(InvalidInputError):
        board_save(slug="global", title="G", period="day")
    assert not Board.objects.filter(slug__in=["b1", "b2", "b3"]).exists()


def test_period_rules_cannot_change_once_a_board_has_entries(  # type: ignore[no-untyped-def]
    boards, client_for, start, complete, alice
) -> None:
    board_save(slug="daily", title="Today", period="day", day_starts_at=time(4, 0))  # no entries
    client = client_for(alice)
    complete(client, "click", start(client, "click"))
    with pytest.raises(BoardRulesFrozenError):
        board_save(slug="daily", title="Today", period="day", timezone="Europe/Paris")
    board_save(slug="quizzers", title="Quiz", action_types=["quiz", "click"])  # no entries
    board_save(slug="quizzers", title="Quiz", action_types=["quiz"])
    complete(client, "quiz", start(client, "quiz"))
    with pytest.raises(BoardRulesFrozenError):
        board_save(slug="quizzers", title="Quiz", action_types=["quiz", "click"])
    board, created = board_save(slug="daily", title="Today's best")  # the title may change
    assert not created
    assert board.title == "Today's best"
    assert board.timezone == "UTC"


def test_a_board_counts_nothing_once_deactivated(  # type: ignore[no-untyped-def]
    boards, client_for, start, complete, alice
) -> None:
    board_save(slug="monthly", is_active=False)
    client = client_for(alice)
    body = complete(client, "click", start(client, "click")).json()
    assert {b["board"] for b in body["boards"]} == {"daily", "weekly"}


def test_a_reversal_counts_in_the_reversed_completions_period(  # type: ignore[no-untyped-def]
    boards, alice
) -> None:
    from scoreboard.services import ledger_award, ledger_reverse

    yesterday = timezone.now() - timedelta(days=1)
    entry = ledger_award(user_id=alice.pk, delta=9, action_id="click", at=yesterday).entry
    ledger_reverse(entry=entry, note="scripted")
    day = span_at(Board.objects.get(slug="daily").rule, yesterday)
    assert day is not None
    credits = PeriodCredit.objects.filter(user=alice, period__board__slug="daily")
    assert {(c.period.key, c.delta) for c in credits} == {(day.key, 9), (day.key, -9)}
    assert (
        PeriodScore.objects.get(user=alice, period__key=day.key, period__board__slug="daily").score
        == 0
    )


def test_many_users_rank_alike_in_the_index_and_in_postgresql(  # type: ignore[no-untyped-def]
    boards, settings
) -> None:
    from leaderboard.period_reads import period_page, period_rank_from_db
    from scoreboard.services import ledger_award

    users = [UserFactory(username=f"u{i}") for i in range(12)]
    for i, user in enumerate(users):
        ledger_award(user_id=user.pk, delta=10 + (i % 4), action_id="click")
    period = Period.objects.get(board__slug="daily")
    from_index = period_page(period, offset=0, limit=20)["entries"]
    ranks = [period_rank_from_db(period.pk, user_id=u.pk) for u in users]
    by_db = sorted((r[0], str(u.pk)) for r, u in zip(ranks, users, strict=True) if r)
    assert [(e["rank"], e["userId"]) for e in from_index] == by_db


def test_the_reconciler_replays_a_period_update_lost_after_commit(  # type: ignore[no-untyped-def]
    boards, monkeypatch, alice
) -> None:
    from leaderboard import services
    from leaderboard.period_index import period_reconcile
    from scoreboard.services import ledger_award

    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    daily = Period.objects.get(board__slug="daily")
    assert period_index(daily.pk).rank(user_id=alice.pk) == (1, 5)
    # The process dies between the commit and its index update.
    with monkeypatch.context() as patch:
        patch.setattr(services, "_score_changed_on_boards", lambda **kwargs: None)
        ledger_award(user_id=alice.pk, delta=8, action_id="click")
    assert period_index(daily.pk).rank(user_id=alice.pk) == (1, 5)
    assert period_reconcile() >= 1
    assert period_index(daily.pk).rank(user_id=alice.pk) == (1, 13)


def test_with_redis_down_a_completion_still_counts_on_every_board(  # type: ignore[no-untyped-def]
    boards, redis_down, client_for, start, complete, alice, bob, api_client
) -> None:
    from scoreboard.services import ledger_award

    ledger_award(user_id=bob.pk, delta=50, action_id="click")
    client = client_for(alice)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200, response.content
    assert {b["board"]: (b["score"], b["rank"]) for b in response.json()["boards"]} == {
        "daily": (5, 2),
        "weekly": (5, 2),
        "monthly": (5, 2),
    }
    page = api_client.get("/api/v1/boards/daily/entries/").json()
    assert [(e["username"], e["score"]) for e in page["entries"]] == [("bob", 50), ("alice", 5)]


def test_a_board_push_reads_its_period_row_once_a_cache_window(settings) -> None:  # type: ignore[no-untyped-def]
    """The sockets' pushes (several a second a board) read the period's row at most once
    per BOARDS_CACHE_SECONDS; a close in this process is seen at once."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from leaderboard.board_broadcast import board_snapshot
    from leaderboard.boards import active_boards
    from leaderboard.closing import period_close
    from scoreboard.services import ledger_award

    settings.BOARDS_CACHE_SECONDS = 60
    board_save(slug="daily", title="Today", period="day")
    alice = UserFactory(username="alice")
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    board_snapshot("daily")  # the period's row and index, made on first use

    with CaptureQueriesContext(connection) as captured:
        for _ in range(5):
            board_snapshot("daily")
    periods = [q["sql"] for q in captured if 'FROM "leaderboard_period"' in q["sql"]]
    assert periods == []  # read once before, kept for the window

    period = Period.objects.get(board__slug="daily")
    Period.objects.filter(pk=period.pk).update(ends_at=timezone.now() - timedelta(seconds=10))
    active_boards.forget()  # (the row was changed behind the cache's back above)
    board_snapshot("daily")
    assert period_close(period.pk, now=timezone.now()) is not None
    # The close forgot the cached row: the next push reads it again.
    with CaptureQueriesContext(connection) as captured:
        board_snapshot("daily")
    assert [q for q in captured if 'FROM "leaderboard_period"' in q["sql"]]
