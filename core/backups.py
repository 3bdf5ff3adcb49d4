"""Running PostgreSQL's client programs (pg_dump, pg_restore) for the backup commands."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError


def pg_environment(database: dict[str, Any]) -> dict[str, str]:
    """libpq variables for `database` (a DATABASES entry): the password goes through the
    environment, never the command line, where `ps` would show it."""
    if database["ENGINE"] != "django.db.backends.postgresql":
        raise CommandError("backup and restore need PostgreSQL (DATABASE_URL=postgres://...)")
    env = {**os.environ, "PGDATABASE": str(database["NAME"])}
    for key, variable in (
        ("HOST", "PGHOST"),
        ("PORT", "PGPORT"),
        ("USER", "PGUSER"),
        ("PASSWORD", "PGPASSWORD"),
    ):
        if database.get(key):
            env[variable] = str(database[key])
    return env


def run_pg_tool(argv: list[str], *, env: dict[str, str]) -> None:
    """Run a PostgreSQL client program (from PG_BIN_DIR if set), or raise CommandError."""
    program = argv[0]
    if settings.PG_BIN_DIR:
        program = os.path.join(settings.PG_BIN_DIR, program)
    found = shutil.which(program)
    if found is None:
        raise CommandError(
            f"{argv[0]} not found: install the PostgreSQL client (Debian: postgresql-client) "
            "or set PG_BIN_DIR"
        )
    result = subprocess.run(  # noqa: S603 - fixed program, arguments built by the command
        [found, *argv[1:]], env=env, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise CommandError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
