"""Staff acts on boards are audited with who did them (leaderboard.signals -> fraud)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from fraud.models import AuditEvent
from leaderboard.boards import board_save, season_end_now
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_creating_a_board_and_ending_a_season_are_audited_with_the_actor() -> None:
    call_command("create_board", slug="daily", title="Today", period="day", stdout=None)
    saved = AuditEvent.objects.get(kind="board.saved")
    assert saved.payload["actor"] == "manage.py create_board"
    assert saved.payload["board"] == "daily"
    assert saved.payload["created"] is True
    admin = UserFactory(username="boss", is_staff=True)
    now = timezone.now()
    board_save(
        slug="s1",
        title="S",
        period="season",
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(hours=1),
        actor="boss",
        user=admin,
    )
    season_end_now(slug="s1", actor="boss", user=admin)
    ended = AuditEvent.objects.get(kind="board.season_ended")
    assert (ended.user, ended.payload["actor"], ended.payload["board"]) == (admin, "boss", "s1")
    # A service call without an actor (a test, a migration) writes no staff record.
    board_save(slug="weekly", title="Week", period="week")
    assert AuditEvent.objects.filter(kind="board.saved").count() == 2
