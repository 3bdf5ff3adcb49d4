"""Back up the PostgreSQL database with pg_dump (custom format: compressed, restorable
table by table with pg_restore). Redis holds nothing that must survive: `restore`
rebuilds it from the database."""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.backups import pg_environment, run_pg_tool


class Command(BaseCommand):
    help = (
        "Write a pg_dump --format=custom backup of the database to FILE "
        "(default: backups/scoreboard-<UTC time>.dump)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--output", "-o", help="the backup file to write")

    def handle(self, *args: Any, output: str | None = None, **options: Any) -> None:
        database = settings.DATABASES["default"]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = Path(output or settings.BASE_DIR / "backups" / f"scoreboard-{stamp}.dump")
        if path.exists():
            raise CommandError(f"{path} exists; choose another --output")
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        started = time.monotonic()
        try:
            run_pg_tool(
                ["pg_dump", "--format=custom", "--no-owner", "--file", str(partial)],
                env=pg_environment(database),
            )
        except CommandError:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, path)  # a backup file is complete or absent
        elapsed = time.monotonic() - started
        size = path.stat().st_size
        self.stdout.write(f"backup written to {path} ({size} bytes in {elapsed:.2f}s)")
