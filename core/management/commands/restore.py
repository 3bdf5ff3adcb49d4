"""Restore a `backup` into the configured database with pg_restore, then rebuild the
ranking index in Redis from it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection

from core.backups import pg_environment, run_pg_tool


class Command(BaseCommand):
    help = (
        "Restore FILE (made by `backup`) into the database, then rebuild the leaderboard "
        "index. Stop the app servers and workers first. A database that already has "
        "tables is only overwritten with --replace."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("file", help="the backup file (pg_dump --format=custom)")
        parser.add_argument(
            "--replace", action="store_true", help="drop and replace the existing tables"
        )

    def handle(self, *args: Any, file: str, replace: bool = False, **options: Any) -> None:
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no backup file at {path}")
        database = settings.DATABASES["default"]
        existing = connection.introspection.table_names()
        connection.close()
        if existing and not replace:
            raise CommandError(
                f"the database {database['NAME']} has {len(existing)} tables; "
                "restore into an empty database, or pass --replace to overwrite it"
            )
        started = time.monotonic()
        argv = ["pg_restore", "--no-owner", "--exit-on-error", "--single-transaction"]
        if existing:
            argv += ["--clean", "--if-exists"]
        run_pg_tool([*argv, "--dbname", database["NAME"], str(path)], env=pg_environment(database))
        restored = time.monotonic() - started
        self.stdout.write(f"restored {path} into {database['NAME']} in {restored:.2f}s")
        started = time.monotonic()
        call_command("rebuild_leaderboard", stdout=self.stdout, stderr=self.stderr)
        self.stdout.write(f"leaderboard index rebuilt in {time.monotonic() - started:.2f}s")
