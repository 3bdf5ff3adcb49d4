"""For every user: score = sum of ledger entries = score in the ranking index."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Sum

from accounts.models import User
from scoreboard.models import ScoreEntry


class Command(BaseCommand):
    help = (
        "Check that every user's score equals their ledger sum and their index score. "
        "--repair resets totals to the ledger (the ledger is the truth) and rebuilds the index."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--repair", action="store_true", help="fix what is inconsistent")

    def handle(self, *args: Any, repair: bool = False, **options: Any) -> None:
        ledger = dict(
            ScoreEntry.objects.values("user_id")
            .annotate(total=Sum("delta"))
            .values_list("user_id", "total")
        )
        users = list(User.objects.values_list("id", "username", "score", "is_active", "is_banned"))
        ledger_mismatch = [
            (uid, name, score, ledger.get(uid, 0))
            for uid, name, score, *_ in users
            if score != ledger.get(uid, 0)
        ]
        index_mismatch = [] if settings.EMBEDDED else self._index_mismatch(users)
        for uid, name, score, total in ledger_mismatch:
            self.stdout.write(f"ledger: {name} ({uid}) score {score} != ledger sum {total}")
        for name, expected, found in index_mismatch:
            self.stdout.write(f"index: {name} expected {expected}, index has {found}")
        if not ledger_mismatch and not index_mismatch:
            self.stdout.write(self.style.SUCCESS(f"Consistent: {len(users)} users checked."))
            return
        if not repair:
            raise CommandError(
                f"Inconsistent: {len(ledger_mismatch)} ledger and {len(index_mismatch)} index "
                "mismatches (run with --repair)."
            )
        for uid, _name, _score, total in ledger_mismatch:
            # The ledger is authoritative: the stored total is a cache of its sum.
            User.objects.filter(pk=uid).update(score=total)
        from leaderboard.services import leaderboard_rebuild

        leaderboard_rebuild()
        self.stdout.write(
            self.style.SUCCESS("Repaired: totals reset to the ledger, index rebuilt.")
        )

    def _index_mismatch(self, users: list[tuple]) -> list[tuple[str, object, object]]:
        from leaderboard.index import IndexColdError, RedisIndex

        index = RedisIndex()
        try:
            found = {str(uid): index.rank(user_id=uid) for uid, *_ in users}
        except IndexColdError:
            return [("(the whole index)", "built", "cold: never built or lost its data")]
        except Exception as exc:
            raise CommandError(f"Redis unavailable: {exc}") from exc
        problems = []
        for uid, name, score, active, banned in users:
            expected = score if active and not banned and score > 0 else None
            got = found[str(uid)][1] if found[str(uid)] else None
            if expected != got:
                problems.append((name, expected, got))
        return problems
