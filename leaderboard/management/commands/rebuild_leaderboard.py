"""Rebuild the ranking index from PostgreSQL."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from leaderboard.rebuild import leaderboard_rebuild


class Command(BaseCommand):
    help = "Rebuild the Redis ranking index from PostgreSQL (atomic swap; safe while serving)."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            ranked = leaderboard_rebuild()
        except Exception as exc:
            raise CommandError(f"Rebuild failed: {type(exc).__name__}: {exc}") from exc
        self.stdout.write(self.style.SUCCESS(f"Leaderboard index rebuilt: {ranked} ranked users."))
