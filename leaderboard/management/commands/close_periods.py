"""Close every period that has ended (what the periodic task does), and with
`--revise` recompute the standings of the closed ones (what a missed revision needs)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from leaderboard.closing import period_revise, periods_close_due
from leaderboard.models import GLOBAL, Board, Period

REVISE_CAUSE = "close_periods --revise"


class Command(BaseCommand):
    help = (
        "Close every period that has ended on every active board (or --board), also those "
        "that ended while nothing ran, printing what it closed. --revise also recomputes "
        "every closed period's standings and stores a new revision where they changed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--board", help="only this board (its slug)")
        parser.add_argument(
            "--revise", action="store_true", help="also revise the closed periods' standings"
        )

    def handle(self, *args: Any, board: str | None = None, revise: bool = False, **o: Any) -> None:
        if board is not None:
            if board == GLOBAL:
                raise CommandError("The board `global` is all time: it never closes.")
            found = Board.objects.filter(slug=board).first()
            if found is None:
                raise CommandError(f"No board {board}.")
            if not found.is_active:
                self.stdout.write(f"board {board} is inactive: its periods are not closed")
        try:
            closed = periods_close_due(board=board)
        except Exception as exc:
            raise CommandError(f"Closing failed: {type(exc).__name__}: {exc}") from exc
        for done in closed:
            self.stdout.write(
                f"closed {done.board} {done.key}: {done.participants} participants, "
                f"revision {done.revision}, checksum {done.checksum}"
            )
        if not closed:
            self.stdout.write("nothing to close")
        if revise:
            self._revise(board)

    def _revise(self, board: str | None) -> None:
        # Inactive boards too: a reversal can still touch their closed periods.
        periods = Period.objects.filter(state=Period.State.CLOSED).select_related("board")
        if board is not None:
            periods = periods.filter(board__slug=board)
        revised = 0
        for period in periods.order_by("board_id", "ends_at"):
            revision = period_revise(period.pk, cause=REVISE_CAUSE)
            if revision is None or revision < 0:
                continue
            period.refresh_from_db()
            revised += 1
            self.stdout.write(
                f"revised {period.board.slug} {period.key}: revision {revision}, "
                f"{period.participants} participants, checksum {period.checksum}"
            )
        if not revised:
            self.stdout.write("no standings changed")
