"""Create or update an action type."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from actions.action_types import action_type_save


def _non_negative(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Create or update an action type (its id is a slug)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--id", required=True, dest="action_id", help="slug, e.g. quiz")
        parser.add_argument("--name", required=True, help="human name")
        parser.add_argument(
            "--reward", required=True, type=int, help="points per completion (>= 1)"
        )
        parser.add_argument(
            "--cooldown",
            type=_non_negative,
            default=0,
            help="seconds between two completions by one user",
        )
        parser.add_argument(
            "--min-duration",
            type=_non_negative,
            default=0,
            help="seconds between start and completion",
        )
        parser.add_argument(
            "--daily-cap", type=int, default=None, help="completions per user per UTC day"
        )
        parser.add_argument("--inactive", action="store_true", help="create it switched off")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            action, created = action_type_save(
                action_id=options["action_id"],
                name=options["name"],
                reward=options["reward"],
                cooldown_seconds=options["cooldown"],
                min_duration_seconds=options["min_duration"],
                daily_cap=options["daily_cap"],
                active=not options["inactive"],
            )
        except ValidationError as exc:
            problems = "; ".join(
                f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items()
            )
            raise CommandError(f"Invalid action type: {problems}") from exc
        self.stdout.write(self.style.SUCCESS(f"{'Created' if created else 'Updated'} {action}"))
