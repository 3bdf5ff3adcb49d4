"""Prepare the database for serving: migrate, then load demo data into an empty database.

Several instances may start at once against one PostgreSQL (`make run` twice, replicas):
a session-level advisory lock makes them take turns, so exactly one migrates and seeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, connection

# An arbitrary constant that names "Scoreboard bootstrap" among advisory locks.
BOOTSTRAP_LOCK_ID = 727_001


class Command(BaseCommand):
    help = "Migrate and, when the database has no users, load demo data (safe in parallel)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-demo", action="store_true", help="Do not load demo data.")

    def handle(self, *args: Any, no_demo: bool = False, **options: Any) -> None:
        try:
            with _exclusive(connection):
                call_command("migrate", "--noinput", verbosity=0)
                self.stdout.write("Database schema up to date.")
                if not no_demo:
                    call_command("seed_demo", "--if-empty", stdout=self.stdout)
        except DatabaseError as exc:
            raise CommandError(f"Database unavailable: {exc}".strip()) from exc


@contextmanager
def _exclusive(conn: Any) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock for the block (no-op on other databases)."""
    if conn.vendor != "postgresql":
        yield
        return
    with conn.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [BOOTSTRAP_LOCK_ID])
    try:
        yield
    finally:
        with conn.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [BOOTSTRAP_LOCK_ID])
