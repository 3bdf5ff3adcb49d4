"""Backup and restore: `backup` (pg_dump --format=custom) of a database with users,
completions and ledger entries, `restore` (pg_restore, then rebuild_leaderboard) into a
fresh database, and the same scores, ledger and ranking there, consistency clean."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import pytest
from django.conf import settings

from accounts.models import User
from scoreboard.models import ScoreEntry
from scoreboard.services import ledger_award, ledger_reverse
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]

# Prints what the restored database and its rebuilt index say (run in a subprocess
# configured for that database).
READ_BACK = """
import json
from django.test import Client
from accounts.models import User
from scoreboard.models import ScoreEntry
board = Client().get("/api/v1/leaderboard/?limit=50", HTTP_HOST="localhost").json()
print(json.dumps({
    "scores": dict(User.objects.values_list("username", "score")),
    "ledger": [list(e) for e in ScoreEntry.objects.order_by("created_at", "id").values_list(
        "user__username", "delta", "reason", "action_id")],
    "board": [[e["rank"], e["username"], e["score"]] for e in board["entries"]],
}))
"""


def _url(name: str) -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{name}"


def _manage(*argv: str, database: str, prefix: str | None = None) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DATABASE_URL": _url(database),
        "REDIS_KEY_PREFIX": prefix or settings.REDIS_KEY_PREFIX,
        "LOG_FORMAT": "text",
    }
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _read_back(database: str, prefix: str | None = None) -> dict:
    result = _manage("shell", "--no-imports", "-c", READ_BACK, database=database, prefix=prefix)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def fresh_database():  # type: ignore[no-untyped-def]
    """An empty database next to the test database, dropped afterwards."""
    name = f"{settings.DATABASES['default']['NAME']}_restored"
    admin = urlparse(_url("postgres")).geturl()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _populate(complete_one) -> None:  # type: ignore[no-untyped-def]
    alice, bob, carol = (UserFactory(username=n) for n in ("alice", "bob", "carol"))
    UserFactory(username="dave")  # no score yet
    complete_one(alice)  # a completion through the API: completion + ledger entry
    ledger_award(user_id=alice.pk, delta=40, action_id="quiz")
    ledger_award(user_id=bob.pk, delta=100, action_id="level-up")
    wrong = ledger_award(user_id=bob.pk, delta=30, action_id="quiz").entry
    ledger_reverse(entry=wrong, note="reviewed: scripted")
    ledger_award(user_id=carol.pk, delta=70, action_id="quiz")
    assert ScoreEntry.objects.count() == 6
    assert dict(User.objects.values_list("username", "score"))["bob"] == 100


def test_a_backup_restores_into_a_fresh_database_with_the_same_board(
    click, client_for, start, complete, fresh_database, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    def complete_one(user) -> None:  # type: ignore[no-untyped-def]
        client = client_for(user)
        assert complete(client, "click", start(client, "click")).status_code == 200

    _populate(complete_one)
    source = settings.DATABASES["default"]["NAME"]
    before = _read_back(source)
    assert [row[1] for row in before["board"]] == ["bob", "carol", "alice"]

    dump = tmp_path / "scoreboard.dump"
    started = time.monotonic()
    backup = _manage("backup", "--output", str(dump), database=source)
    backup_seconds = time.monotonic() - started
    assert backup.returncode == 0, backup.stderr
    assert dump.read_bytes().startswith(b"PGDMP")  # pg_dump's custom format

    restored_prefix = f"{settings.REDIS_KEY_PREFIX}-restored"
    started = time.monotonic()
    restore = _manage("restore", str(dump), database=fresh_database, prefix=restored_prefix)
    restore_seconds = time.monotonic() - started
    assert restore.returncode == 0, restore.stderr
    assert "leaderboard index rebuilt" in restore.stdout

    after = _read_back(fresh_database, prefix=restored_prefix)
    assert after == before
    check = _manage("check_consistency", database=fresh_database, prefix=restored_prefix)
    assert check.returncode == 0, check.stdout + check.stderr
    print(  # the timings of the round trip, shown with -s
        f"\nround trip: manage.py backup {backup_seconds:.2f}s, manage.py restore "
        f"{restore_seconds:.2f}s (wall time of each process, Django start-up included)\n"
        f"{backup.stdout.strip()}\n{restore.stdout.strip()}"
    )


def test_restore_refuses_to_overwrite_a_database_with_tables(tmp_path) -> None:  # type: ignore[no-untyped-def]
    dump = tmp_path / "x.dump"
    source = settings.DATABASES["default"]["NAME"]
    assert _manage("backup", "--output", str(dump), database=source).returncode == 0
    refused = _manage("restore", str(dump), database=source)
    assert refused.returncode != 0
    assert "--replace" in refused.stderr


def test_backup_and_restore_fail_clearly(tmp_path) -> None:  # type: ignore[no-untyped-def]
    source = settings.DATABASES["default"]["NAME"]
    missing = _manage("restore", str(tmp_path / "none.dump"), database=source)
    assert missing.returncode != 0
    assert "no backup file" in missing.stderr
    existing = tmp_path / "exists.dump"
    existing.write_bytes(b"")
    clash = _manage("backup", "--output", str(existing), database=source)
    assert clash.returncode != 0
    assert "exists" in clash.stderr
