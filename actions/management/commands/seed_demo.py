"""Demo users and action types for a first look. Safe to run twice."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from accounts.models import User
from accounts.services import user_register
from actions.action_types import action_type_save
from actions.models import ActionType
from leaderboard.boards import board_save, global_board
from leaderboard.models import Board
from scoreboard.models import ScoreEntry
from scoreboard.services import ledger_award

DEMO_PASSWORD = "scoreboard-demo"  # noqa: S105 - documented demo credential
DEMO_USERS = [("alice", 420), ("bob", 380), ("carol", 250), ("dave", 120), ("erin", 60)]
DEMO_ACTIONS: list[dict[str, Any]] = [
    {"id": "click", "name": "Click the button", "reward": 1},
    {
        "id": "quiz",
        "name": "Finish a quiz",
        "reward": 25,
        "cooldown_seconds": 10,
        "min_duration_seconds": 3,
    },
    {
        "id": "level-up",
        "name": "Clear a level",
        "reward": 100,
        "cooldown_seconds": 60,
        "min_duration_seconds": 10,
        "daily_cap": 20,
    },
]

# Besides `global` (its migration creates it): a day, a week in another zone, one action.
DEMO_BOARDS: list[dict[str, Any]] = [
    {"slug": "daily", "title": "Today", "period": "day", "timezone": "UTC"},
    {
        "slug": "weekly",
        "title": "This week",
        "period": "week",
        "timezone": "Europe/Paris",
        "week_starts_on": 1,
    },
    {"slug": "quizzers", "title": "Quiz masters", "period": "all_time", "action_types": ["quiz"]},
]


class Command(BaseCommand):
    help = "Create demo users (password 'scoreboard-demo'), action types and boards; idempotent."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when any user already exists."
        )

    def handle(self, *args: Any, if_empty: bool = False, **options: Any) -> None:
        if if_empty and User.objects.exists():
            self.stdout.write("Database already has users; demo data not loaded.")
            return
        created_users = created_actions = created_boards = 0
        with transaction.atomic():
            for spec in DEMO_ACTIONS:
                if ActionType.objects.filter(pk=spec["id"]).exists():
                    continue
                action_type_save(
                    action_id=spec["id"],
                    name=spec["name"],
                    reward=spec["reward"],
                    cooldown_seconds=spec.get("cooldown_seconds", 0),
                    min_duration_seconds=spec.get("min_duration_seconds", 0),
                    daily_cap=spec.get("daily_cap"),
                )
                created_actions += 1
            global_board()  # its migration made it; a flushed database has none
            for board in DEMO_BOARDS:
                # An existing board is left as staff may have changed it.
                if not Board.objects.filter(slug=board["slug"]).exists():
                    board_save(**board)
                    created_boards += 1
            for username, score in DEMO_USERS:
                if User.objects.filter(username__iexact=username).exists():
                    continue
                user = user_register(
                    username=username, email=f"{username}@example.com", password=DEMO_PASSWORD
                )
                created_users += 1
                ledger_award(
                    user_id=user.pk,
                    delta=score,
                    reason=ScoreEntry.Reason.ADJUSTMENT,
                    note="demo seed",
                )
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo data: {created_users} users, {created_actions} action types and "
                f"{created_boards} boards created."
            )
        )
