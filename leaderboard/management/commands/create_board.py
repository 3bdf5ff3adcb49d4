"""Create or update a board (SPEC "Boards and periods"): `board_save` validates it and
refuses to change the period rules of a board that has entries."""

from __future__ import annotations

import argparse
from datetime import datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.errors import ApplicationError
from leaderboard.boards import board_save
from leaderboard.models import Board


def _clock(value: str) -> time:
    try:
        return time.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a local time HH:MM, got {value!r}") from None


def _instant(value: str) -> datetime:
    # Naive instants are passed on: the board's validation names the problem.
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 instant with its offset, got {value!r}"
        ) from None


def _ids(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


class Command(BaseCommand):
    help = (
        "Create or update a board. Its period rules (period, timezone, week start, day "
        "start, season dates, action types) can change only while it has no entries."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True, help="the board's id, e.g. daily")
        parser.add_argument("--title", required=True, help="shown on the page's tab")
        parser.add_argument("--period", required=True, choices=Board.Period.values)
        parser.add_argument("--timezone", help="IANA zone of the calendar (default UTC)")
        parser.add_argument(
            "--week-starts-on", type=int, help="ISO weekday a week starts on (1 = Monday)"
        )
        parser.add_argument(
            "--day-starts-at", type=_clock, help="local time a day starts at, HH:MM"
        )
        parser.add_argument("--starts-at", type=_instant, help="a season's start (ISO 8601)")
        parser.add_argument("--ends-at", type=_instant, help="a season's end (ISO 8601)")
        parser.add_argument(
            "--actions",
            type=_ids,
            help="comma-separated action type ids it counts ('' or absent: every one)",
        )
        parser.add_argument("--inactive", action="store_true", help="switch the board off")

    def handle(self, *args: Any, **options: Any) -> None:
        actions = options["actions"]
        try:
            board, created = board_save(
                slug=options["slug"],
                actor="manage.py create_board",
                title=options["title"],
                period=options["period"],
                timezone=options["timezone"],
                week_starts_on=options["week_starts_on"],
                day_starts_at=options["day_starts_at"],
                starts_at=options["starts_at"],
                ends_at=options["ends_at"],
                action_types=actions,
                is_active=not options["inactive"],
            )
        except ApplicationError as exc:
            raise CommandError(f"Board {options['slug']} not saved: {exc.explain()}") from exc
        counts = ", ".join(board.action_types) if board.action_types else "every action type"
        self.stdout.write(
            self.style.SUCCESS(
                f"{'Created' if created else 'Updated'} board {board.slug}: {board.period} "
                f"in {board.timezone}, counting {counts}"
                + ("" if board.is_active else " (inactive)")
            )
        )
