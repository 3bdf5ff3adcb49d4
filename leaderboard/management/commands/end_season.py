"""End a season board now; its period is then closed like any other."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.errors import ApplicationError
from leaderboard.boards import season_end_now
from leaderboard.closing import periods_close_due


class Command(BaseCommand):
    help = (
        "End a running season board now. Its period is closed by the periodic task within "
        "BOARDS_CLOSE_GRACE_SECONDS (here at once, if that grace has already passed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the season board's slug")

    def handle(self, *args: Any, slug: str, **options: Any) -> None:
        try:
            board = season_end_now(slug=slug, actor="manage.py end_season")
        except ApplicationError as exc:
            raise CommandError(f"Season {slug} not ended: {exc.explain()}") from exc
        if board.ends_at is None:  # season_end_now has just set it
            raise CommandError(f"Season {slug} has no end.")
        self.stdout.write(self.style.SUCCESS(f"Ended season {slug} at {board.ends_at.isoformat()}"))
        grace = settings.BOARDS_CLOSE_GRACE_SECONDS
        # The close waits out the grace (completions still in flight); never earlier.
        if timezone.now() < board.ends_at + timedelta(seconds=grace):
            self.stdout.write(
                f"its standings are closed within {grace:g} seconds by the periodic task "
                f"(or run `close_periods --board {slug}`)"
            )
            return
        try:
            closed = periods_close_due(board=slug)
        except Exception as exc:
            raise CommandError(f"Closing failed: {type(exc).__name__}: {exc}") from exc
        for done in closed:
            self.stdout.write(
                f"closed {done.board} {done.key}: {done.participants} participants, "
                f"revision {done.revision}, checksum {done.checksum}"
            )
