"""A real streaming replica: a PostgreSQL 15 primary and a hot standby made from it with
pg_basebackup -R, both started by this test on ports of their own (the shared server on
5432 allows no replication connections, so the test runs its own primary) and stopped at
the end. The app, configured with DATABASE_URL and DATABASE_REPLICA_URL, reads the board
from the standby, writes on the primary, and sees a write arrive on the standby."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings

from deploy.stack import free_port
from scoreboard.services import ledger_award
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parents[2]
PG_BIN = Path(os.environ.get("PG_TEST_BIN_DIR", "/usr/lib/postgresql/15/bin"))

CHECK = """
import json, time, django
django.setup()
from django.db import connections
from django.test import Client
from accounts.models import User
from scoreboard.services import ledger_award

counts = {"default": 0, "replica": 0}

def counter(alias):
    def wrap(execute, sql, params, many, context):
        counts[alias] += 1
        return execute(sql, params, many, context)
    return wrap

out = {}
with connections["replica"].cursor() as cursor:
    cursor.execute("SELECT pg_is_in_recovery()")
    out["replica_in_recovery"] = cursor.fetchone()[0]
client = Client(HTTP_HOST="localhost")
with connections["default"].execute_wrapper(counter("default")), \\
        connections["replica"].execute_wrapper(counter("replica")):
    board = client.get("/api/v1/leaderboard/").json()
    out["board_reads"] = dict(counts)
    out["board"] = [[e["username"], e["score"]] for e in board["entries"]]
    counts.update(default=0, replica=0)
    bob = User.objects.get(username="bob")
    ledger_award(user_id=bob.pk, delta=500, action_id="quiz")
    out["write_queries"] = dict(counts)
started = time.monotonic()
while time.monotonic() - started < 15:
    top = client.get("/api/v1/leaderboard/").json()["entries"][0]
    if [top["username"], top["score"]] == ["bob", 600]:
        break
    time.sleep(0.02)
out["replicated_in"] = time.monotonic() - started
out["top_after_write"] = [top["username"], top["score"]]
try:
    with connections["replica"].cursor() as cursor:
        cursor.execute("CREATE TABLE must_fail (i int)")
except Exception as exc:
    out["replica_write_error"] = type(exc).__name__
print(json.dumps(out))
"""


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its programs as the postgres user."""
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


def _pg(program: str, *args: str, timeout: float = 120) -> None:
    done = subprocess.run(
        _as_postgres([str(PG_BIN / program), *args]),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{program} failed: {done.stdout}\n{done.stderr}"


@pytest.fixture
def primary_and_standby() -> Iterator[tuple[int, int]]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL 15 server programs not found in {PG_BIN} (PG_TEST_BIN_DIR)")
    workdir = Path(tempfile.mkdtemp(prefix="scoreboard-replica-"))
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    workdir.chmod(0o700)
    primary, standby = workdir / "primary", workdir / "standby"
    primary_port, standby_port = free_port(), free_port()
    started: list[Path] = []
    try:
        _pg("initdb", "-D", str(primary), "-U", "postgres", "--auth=trust", "--no-sync")
        with (primary / "postgresql.conf").open("a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nunix_socket_directories = '{workdir}'\n"
                "wal_level = replica\nmax_wal_senders = 4\nfsync = off\n"
                "shared_buffers = 16MB\nmax_connections = 40\n"
            )
        _pg(
            "pg_ctl",
            "-D",
            str(primary),
            "-l",
            str(workdir / "primary.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {primary_port}",
            "start",
        )
        started.append(primary)
        _pg(
            "pg_basebackup",
            "-h",
            "127.0.0.1",
            "-p",
            str(primary_port),
            "-U",
            "postgres",
            "-D",
            str(standby),
            "-R",
            "-X",
            "stream",
            "--no-sync",
        )
        _pg(
            "pg_ctl",
            "-D",
            str(standby),
            "-l",
            str(workdir / "standby.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-p {standby_port}",
            "start",
        )
        started.append(standby)
        yield primary_port, standby_port
    finally:
        for data in reversed(started):
            _pg("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(workdir, ignore_errors=True)


def _manage(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=ROOT,
        env={
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "LOG_FORMAT": "text",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def test_board_reads_come_from_a_streaming_standby(primary_and_standby, tmp_path) -> None:  # type: ignore[no-untyped-def]
    primary_port, standby_port = primary_and_standby
    # Data on the primary: this test database's users and ledger, by backup and restore.
    for name, delta in (("alice", 40), ("bob", 100), ("carol", 70)):
        ledger_award(user_id=UserFactory(username=name).pk, delta=delta, action_id="quiz")
    db = settings.DATABASES["default"]
    test_url = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"
    dump = tmp_path / "seed.dump"
    done = _manage(["backup", "--output", str(dump)], {"DATABASE_URL": test_url})
    assert done.returncode == 0, done.stderr
    with psycopg.connect(
        f"postgres://postgres@127.0.0.1:{primary_port}/postgres", autocommit=True
    ) as conn:
        conn.execute("CREATE DATABASE scoreboard")
    primary_url = f"postgres://postgres@127.0.0.1:{primary_port}/scoreboard"
    standby_url = f"postgres://postgres@127.0.0.1:{standby_port}/scoreboard"
    # Embedded mode for Redis (no REDIS_URL): the board is read from PostgreSQL.
    embedded = {"REDIS_URL": "", "CELERY_TASK_ALWAYS_EAGER": "1"}
    done = _manage(["restore", str(dump)], {"DATABASE_URL": primary_url, **embedded})
    assert done.returncode == 0, done.stderr

    done = _manage(
        ["shell", "--no-imports", "-c", CHECK],
        {"DATABASE_URL": primary_url, "DATABASE_REPLICA_URL": standby_url, **embedded},
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\nstreaming replica: {out}")  # shown with -s: the replication delay seen

    assert out["replica_in_recovery"] is True  # a hot standby, not a copy
    assert out["board"] == [["bob", 100], ["carol", 70], ["alice", 40]]
    assert out["board_reads"]["replica"] > 0
    assert out["board_reads"]["default"] == 0
    assert out["write_queries"]["default"] > 0
    assert out["write_queries"]["replica"] == 0
    assert out["top_after_write"] == ["bob", 600]  # streamed from the primary
    assert out["replica_write_error"] == "InternalError"  # read-only transaction
