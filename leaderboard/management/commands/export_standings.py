"""A closed period's standings (its current revision) as CSV, as the staff endpoint
`/api/v1/boards/{slug}/periods/{key}/standings.csv` serves them."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leaderboard.board_views import standings_csv
from leaderboard.models import GLOBAL, Board, Period


class Command(BaseCommand):
    help = (
        "Write a closed period's standings (current revision) as CSV with a header row, "
        "to stdout or --output FILE."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help="the board's slug")
        parser.add_argument("key", help="the period's key, e.g. 2026-03-29, 2026-03, a season")
        parser.add_argument("--output", help="write to this file instead of stdout")

    def handle(self, *args: Any, slug: str, key: str, output: str | None = None, **o: Any) -> None:
        if slug == GLOBAL:
            raise CommandError("The board `global` is all time: it is never closed.")
        if not Board.objects.filter(slug=slug).exists():
            raise CommandError(f"No board {slug}.")
        period = Period.objects.filter(board__slug=slug, key=key).first()
        if period is None:
            raise CommandError(f"Board {slug} has no period {key}.")
        if period.state != Period.State.CLOSED:
            raise CommandError(
                f"Period {slug} {key} is {period.state}: its standings are not final yet."
            )
        if output is None:
            for line in standings_csv(period):
                self.stdout.write(line, ending="")
            return
        try:
            with open(output, "w", encoding="utf-8", newline="") as file:
                file.writelines(standings_csv(period))
        except OSError as exc:
            raise CommandError(f"Could not write {output}: {exc}") from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {period.participants} standings of {slug} {key} "
                f"(revision {period.revision}) to {output}"
            )
        )
