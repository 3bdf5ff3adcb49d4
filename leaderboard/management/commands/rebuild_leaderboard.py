"""Rebuild the ranking indexes from PostgreSQL: the global one and every held period's
(open or closing), or one board's."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from leaderboard.models import GLOBAL, Board
from leaderboard.period_index import held_periods, period_index_rebuild
from leaderboard.rebuild import leaderboard_rebuild


class Command(BaseCommand):
    help = (
        "Rebuild the Redis ranking indexes from PostgreSQL (atomic swap; safe while "
        "serving): the global one and every board's held periods, or with --board one "
        "board's (--board global: the global index)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--board", help="only this board (its slug)")

    def handle(self, *args: Any, board: str | None = None, **options: Any) -> None:
        if board not in (None, GLOBAL) and not Board.objects.filter(slug=board).exists():
            raise CommandError(f"No board {board}.")
        if board in (None, GLOBAL):
            try:
                ranked = leaderboard_rebuild()
            except Exception as exc:
                raise CommandError(f"Rebuild failed: {type(exc).__name__}: {exc}") from exc
            self.stdout.write(
                self.style.SUCCESS(f"Leaderboard index rebuilt: {ranked} ranked users.")
            )
            if board == GLOBAL:
                return
        periods = [p for p in held_periods() if p.board.slug != GLOBAL]
        if board is not None:
            periods = [p for p in periods if p.board.slug == board]
            if not periods:
                self.stdout.write(f"Board {board} holds no period (inactive, or none yet).")
        if settings.EMBEDDED:
            self.stdout.write("No Redis (embedded): periods are read from PostgreSQL.")
            return
        failed = 0
        for period in sorted(periods, key=lambda p: (p.board_id, p.key)):
            try:
                ranked = period_index_rebuild(period.pk)
            except Exception as exc:
                failed += 1
                self.stderr.write(
                    f"{period.board.slug} {period.key}: rebuild failed: {type(exc).__name__}: {exc}"
                )
                continue
            self.stdout.write(
                self.style.SUCCESS(
                    f"{period.board.slug} {period.key} index rebuilt: {ranked} ranked users."
                )
            )
        if failed:
            raise CommandError(f"Rebuild failed for {failed} of {len(periods)} periods.")
