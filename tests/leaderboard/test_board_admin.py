"""Boards and periods in the admin: a board saved through the same checks as
`create_board`, its rules read-only once it has entries, a season ended now; periods and
their revisions read-only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from leaderboard.boards import board_save
from leaderboard.models import Board, Period
from scoreboard.services import ledger_award
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def staff_client(db) -> Client:  # type: ignore[no-untyped-def]
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    return client


def form(**fields: Any) -> dict[str, Any]:
    data = {
        "slug": "daily",
        "title": "Today",
        "period": "day",
        "timezone": "UTC",
        "week_starts_on": "1",
        "day_starts_at": "00:00",
        "starts_at_0": "",
        "starts_at_1": "",
        "ends_at_0": "",
        "ends_at_1": "",
        "action_types": "",
        "is_active": "on",
    }
    data.update(fields)
    return data


def test_it_opens_the_lists(staff_client: Client, click, alice) -> None:  # type: ignore[no-untyped-def]
    board_save(slug="daily", title="Today", period="day")
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    period = Period.objects.get(board__slug="daily")
    for path in (
        "/admin/leaderboard/board/",
        "/admin/leaderboard/period/",
        "/admin/leaderboard/period/?state__exact=open",
        f"/admin/leaderboard/period/{period.pk}/change/",
    ):
        assert staff_client.get(path).status_code == 200, path


def test_it_creates_a_board_through_its_checks(staff_client: Client) -> None:
    for fields, field, message in [
        ({"timezone": "Mars/Olympus"}, "period", "Unknown time zone 'Mars/Olympus'"),
        ({"period": "season"}, "period", "A season needs both starts_at and ends_at"),
        ({"slug": "global"}, "period", "global is all_time over every action type"),
        ({"title": " "}, "title", "required"),
    ]:
        response = staff_client.post("/admin/leaderboard/board/add/", form(**fields))
        assert response.status_code == 200, fields
        errors = response.context["adminform"].form.errors
        assert message in " ".join(errors.get(field, [])), errors
    assert not Board.objects.exclude(slug="global").exists()
    response = staff_client.post(
        "/admin/leaderboard/board/add/", form(action_types="quiz, click,quiz")
    )
    assert response.status_code == 302, response.content.decode()
    board = Board.objects.get(slug="daily")
    assert board.action_types == ["click", "quiz"]
    response = staff_client.post(
        "/admin/leaderboard/board/add/",
        form(
            slug="s1",
            period="season",
            starts_at_0="2026-03-01",
            starts_at_1="00:00:00",
            ends_at_0="2026-06-01",
            ends_at_1="00:00:00",
        ),
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Board.objects.get(slug="s1").period == "season"


def test_it_shows_a_boards_rules_read_only_once_it_has_entries(  # type: ignore[no-untyped-def]
    staff_client: Client, click, alice
) -> None:
    board, _ = board_save(slug="daily", title="Today", period="day")
    page = staff_client.get(f"/admin/leaderboard/board/{board.pk}/change/").content.decode()
    assert 'name="timezone"' in page
    assert 'name="slug"' not in page
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    page = staff_client.get(f"/admin/leaderboard/board/{board.pk}/change/").content.decode()
    assert 'name="timezone"' not in page
    assert 'name="title"' in page
    response = staff_client.post(
        f"/admin/leaderboard/board/{board.pk}/change/", {"title": "Today!", "is_active": "on"}
    )
    assert response.status_code == 302, response.content.decode()
    board.refresh_from_db()
    assert (board.title, board.period) == ("Today!", "day")


def test_it_ends_a_season_now(staff_client: Client) -> None:
    now = timezone.now()
    season, _ = board_save(
        slug="s1",
        title="S1",
        period="season",
        starts_at=now - timedelta(days=1),
        ends_at=now + timedelta(days=1),
    )
    daily, _ = board_save(slug="daily", title="Today", period="day")
    response = staff_client.post(
        "/admin/leaderboard/board/",
        {"action": "end_season_now", "_selected_action": [season.pk, daily.pk]},
        follow=True,
    )
    text = " ".join(str(m) for m in response.context["messages"])
    assert "s1 ended at" in text, text
    assert "daily is not a season" in text
    season.refresh_from_db()
    assert season.ended_early_at is not None
    assert season.ends_at is not None
    assert season.ends_at < now + timedelta(hours=1)


def test_it_keeps_periods_read_only(staff_client: Client, click, alice) -> None:  # type: ignore[no-untyped-def]
    board_save(slug="daily", title="Today", period="day")
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    period = Period.objects.get(board__slug="daily")
    assert staff_client.get("/admin/leaderboard/period/add/").status_code == 403
    assert staff_client.get(f"/admin/leaderboard/period/{period.pk}/delete/").status_code == 403
    page = staff_client.get(f"/admin/leaderboard/period/{period.pk}/change/").content.decode()
    assert 'name="state"' not in page
