"""For every user: score = sum of ledger entries = score in the ranking index; for every
held period: each running total = the sum of its credits = score in the period's index;
for every closed period: its standings still hash to its checksum."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.models import User
from leaderboard.models import Period
from leaderboard.period_checks import (
    PeriodMismatch,
    period_checksum_mismatches,
    period_index_mismatches,
    period_score_mismatches,
    period_scores_reset,
    periods_to_check,
)
from leaderboard.period_index import period_index_rebuild
from leaderboard.rebuild import leaderboard_rebuild
from leaderboard.selectors import IndexUnavailableError, leaderboard_index_mismatches
from scoreboard.selectors import ledger_total_mismatches
from scoreboard.services import ledger_total_reset


class Command(BaseCommand):
    help = (
        "Check that every user's score equals their ledger sum and their index score, that "
        "every held period's totals equal its credits and its index, and that every closed "
        "period's standings match its checksum. --repair resets totals to the ledger (the "
        "ledger is the truth) and rebuilds the indexes; a closed period's standings are a "
        "record and are only reported. Exits non-zero while a mismatch remains."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help="fix what is inconsistent")

    def handle(self, *args: Any, repair: bool = False, **options: Any) -> None:
        ledger_mismatch = ledger_total_mismatches()
        try:
            index_mismatch = [] if settings.EMBEDDED else leaderboard_index_mismatches()
        except IndexUnavailableError as exc:
            raise CommandError(f"Redis unavailable: {exc}") from exc
        periods = periods_to_check()
        period_mismatch = self._period_mismatches(periods)
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
        for problem in period_mismatch:
            self.stdout.write(str(problem))
        if not ledger_mismatch and not index_mismatch and not period_mismatch:
            users = User.objects.count()
            self.stdout.write(
                self.style.SUCCESS(f"Consistent: {users} users and {len(periods)} periods checked.")
            )
            return
        if not repair:
            raise CommandError(
                f"Inconsistent: {len(ledger_mismatch)} ledger, {len(index_mismatch)} index and "
                f"{len(period_mismatch)} period mismatches (run with --repair)."
            )
        if ledger_mismatch or index_mismatch:
            for row in ledger_mismatch:
                ledger_total_reset(user_id=row.user_id)
            leaderboard_rebuild()
            self.stdout.write(
                self.style.SUCCESS("Repaired: totals reset to the ledger, index rebuilt.")
            )
        if period_mismatch:
            self._repair_periods(periods, period_mismatch)

    def _period_mismatches(self, periods: list[Period]) -> list[PeriodMismatch]:
        found: list[PeriodMismatch] = []
        for period in periods:
            if period.state == Period.State.CLOSED:
                found += period_checksum_mismatches(period)
                continue
            found += period_score_mismatches(period)
            if settings.EMBEDDED or not period.board.is_active:
                continue  # no index: reads come from PostgreSQL
            try:
                found += period_index_mismatches(period)
            except Exception as exc:
                raise CommandError(f"Redis unavailable: {exc}") from exc
        return found

    def _repair_periods(self, periods: list[Period], mismatches: list[PeriodMismatch]) -> None:
        by_id = {period.pk: period for period in periods}
        scores = {m.period_id for m in mismatches if m.kind == "score"}
        held = {m.period_id for m in mismatches if m.kind in ("score", "index")}
        for period_id in sorted(held):
            period = by_id[period_id]
            fixed = period_scores_reset(period_id=period_id) if period_id in scores else 0
            if not settings.EMBEDDED and period.board.is_active:
                try:
                    period_index_rebuild(period_id)
                except Exception as exc:
                    raise CommandError(
                        f"Rebuilding {period.board.slug} {period.key} failed: {exc}"
                    ) from exc
            self.stdout.write(
                self.style.SUCCESS(
                    f"Repaired {period.board.slug} {period.key}: {fixed} totals reset to "
                    "the credits, index rebuilt."
                )
            )
        remaining = self._period_mismatches([by_id[pid] for pid in sorted(held)])
        remaining += [m for m in mismatches if m.kind == "checksum"]
        if remaining:
            for problem in remaining:
                self.stdout.write(f"remains: {problem}")
            raise CommandError(
                f"Inconsistent: {len(remaining)} period mismatches remain "
                "(a closed period's standings are a record: they are not repaired)."
            )
