"""The embedded default (`make run`: SQLite, no Redis, in-memory channel layer, eager
tasks) as a real daphne process on a loopback port, for the browser tests.

The database is prepared in a fresh process configured only by its environment, as
`make run`'s bootstrap does; a Python snippet given by the test adds its data there and
prints one JSON line back (session keys, user ids).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from deploy.stack import BIN, Process, free_port, wait_http
from tests.support import run_django


@dataclass
class EmbeddedServer:
    url: str
    data: dict  # type: ignore[type-arg]  # what the setup snippet printed
    log: Path


def embedded_env(tmp_path: Path) -> dict[str, str | None]:
    return {
        "DEBUG": "0",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        "REDIS_URL": "",
        "CELERY_BROKER_URL": None,
        "CELERY_TASK_ALWAYS_EAGER": None,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "ALLOWED_HOSTS": "127.0.0.1",
        "COMPLETION_RATE_PER_USER": "100/m",
        # Brand-new accounts completing the same action: not what this test is about.
        "FRAUD_RULE_WEIGHTS": "new_account=0,duplicate_completion=0",
    }


@contextmanager
def embedded_server(tmp_path: Path, setup: str, **env: str) -> Iterator[EmbeddedServer]:
    """Migrate, run `setup` (Django is set up; it prints one JSON line), then serve with
    daphne as `make run` does, until the block ends."""
    overrides = {**embedded_env(tmp_path), **env}
    script = (
        "import django\ndjango.setup()\n"
        "from django.core.management import call_command\n"
        "call_command('migrate', verbosity=0)\n" + setup
    )
    done = run_django(["-c", script], overrides)
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(done.stdout.strip().splitlines()[-1])
    merged = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SCOREBOARD_READ_DOT_ENV": "0",
        "PYTHONUNBUFFERED": "1",
    }
    for key, value in overrides.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    port = free_port()
    log = tmp_path / "daphne.log"
    daphne = Process(
        "daphne-embedded",
        [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "config.asgi:application"],
        merged,
        log,
    )
    daphne.start()
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120, proc=daphne)
        yield EmbeddedServer(url=f"http://127.0.0.1:{port}", data=data, log=log)
    finally:
        daphne.stop()
