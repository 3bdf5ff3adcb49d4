"""For every user: score = sum of ledger entries = score in the ranking index."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from leaderboard.rebuild import leaderboard_rebuild
from leaderboard.selectors import IndexUnavailableError, leaderboard_index_mismatches
from scoreboard.selectors import ledger_total_mismatches
from scoreboard.services import ledger_total_reset


class Command(BaseCommand):
    help = (
        "Check that every user's score equals their ledger sum and their index score. "
        "--repair resets totals to the ledger (the ledger is the truth) and rebuilds the index."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help="fix what is inconsistent")

    def handle(self, *args: Any, repair: bool = False, **options: Any) -> None:
        ledger_mismatch = ledger_total_mismatches()
        try:
            index_mismatch = [] if settings.EMBEDDED else leaderboard_index_mismatches()
        except IndexUnavailableError as exc:
            raise CommandError(f"Redis unavailable: {exc}") from exc
        for row in ledger_mismatch:
            self.stdout.write(
                f"ledger: {row.username} ({row.user_id}) score {row.score}"
                f" != ledger sum {row.ledger_total}"
            )
        for index_row in index_mismatch:
            self.stdout.write(
                f"index: {index_row.username} expected {index_row.expected},"
                f" index has {index_row.found}"
            )
        if not ledger_mismatch and not index_mismatch:
            users = User.objects.count()
            self.stdout.write(self.style.SUCCESS(f"Consistent: {users} users checked."))
            return
        if not repair:
            raise CommandError(
                f"Inconsistent: {len(ledger_mismatch)} ledger and {len(index_mismatch)} index "
                "mismatches (run with --repair)."
            )
        for row in ledger_mismatch:
            ledger_total_reset(user_id=row.user_id)
        leaderboard_rebuild()
        self.stdout.write(
            self.style.SUCCESS("Repaired: totals reset to the ledger, index rebuilt.")
        )
