"""The write baseline: pgbench running the completion's own transaction on a scratch copy.

The scratch database (`<bench database>_pgbench`, recreated each run) gets the schema of
the tables the completion touches, copied with `pg_dump --schema-only` from the
bench database (so the same indexes, checks and deferred foreign keys), and the bench
database's users, action types, boards and periods (the credit statement writes to
every period the real completion credited); users get ids numbered 1..N so a pgbench variable can
name one. The script is the transaction a completion runs (checked against the real one,
see `completion_statements`):

    BEGIN;
    UPDATE accounts_user SET score = score + 1, score_reached_at = now() WHERE id = $u
        RETURNING score - 1, username, is_active, is_banned;
    INSERT INTO scoreboard_scoreentry (...) VALUES (...) RETURNING id;
    WITH p AS (SELECT id FROM leaderboard_period WHERE id IN (...) AND state = 'open'
        FOR SHARE), c AS (INSERT INTO leaderboard_periodcredit ...)
        INSERT INTO leaderboard_periodscore ... ON CONFLICT ... DO UPDATE ...;
    INSERT INTO actions_completion (... unique nonce ...) VALUES (...);
    COMMIT;

in two variants: spread over every user, and every client on one hot row. pgbench's
CPU comes from `wait4()`; its latencies from its per-transaction log.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench.databases import recreate_database

TABLES = (
    "accounts_user",
    "actions_actiontype",
    "scoreboard_scoreentry",
    "actions_completion",
    "leaderboard_board",
    "leaderboard_period",
    "leaderboard_periodcredit",
    "leaderboard_periodscore",
)
# Copied with their rows: the players, the action types, and the boards and periods a
# completion credits.
DATA_TABLES = ("accounts_user", "actions_actiontype", "leaderboard_board", "leaderboard_period")
# The statements of the completion's transaction, as (verb, table), in order.
SHAPE = [
    ("UPDATE", "accounts_user"),
    ("INSERT", "scoreboard_scoreentry"),
    ("WITH", "leaderboard_period"),
    ("INSERT", "actions_completion"),
]
USER_ID = "('00000000-0000-4000-8000-' || lpad(:u::text, 12, '0'))::uuid"

SCRIPT = f"""\\set u random(1, :users)
BEGIN;
UPDATE accounts_user SET score = score + 1, score_reached_at = now() WHERE id = {USER_ID} RETURNING score - 1 AS score, username, is_active, is_banned \\gset u_
INSERT INTO scoreboard_scoreentry (user_id, delta, score_before, score_after, reason, action_id, token_hash, ip, user_agent, reverses_id, note, created_at) VALUES ({USER_ID}, 1, :u_score, :u_score + 1, 'completion', :action, md5(random()::text) || md5(random()::text), '127.0.0.1', 'scoreboard-bench', NULL, '', now()) RETURNING id AS entry_id \\gset
WITH p AS (SELECT id FROM leaderboard_period WHERE id IN (%(periods)s) AND state = 'open' FOR SHARE), c AS (INSERT INTO leaderboard_periodcredit (period_id, entry_id, user_id, delta, at) SELECT id, :entry_id, {USER_ID}, 1, now() FROM p RETURNING period_id) INSERT INTO leaderboard_periodscore (period_id, user_id, score, reached_at, entry_id) SELECT period_id, {USER_ID}, 1, now(), :entry_id FROM c ON CONFLICT (period_id, user_id) DO UPDATE SET score = leaderboard_periodscore.score + excluded.score, reached_at = GREATEST(leaderboard_periodscore.reached_at, excluded.reached_at), entry_id = GREATEST(leaderboard_periodscore.entry_id, excluded.entry_id) RETURNING period_id, score;
INSERT INTO actions_completion (id, user_id, action_id, nonce, score_entry_id, delta, started_at, client_timestamp, risk_score, flagged, ip, user_agent, created_at) VALUES (gen_random_uuid(), {USER_ID}, :action, md5(random()::text), :entry_id, 1, now(), NULL, 0.0, false, '127.0.0.1', 'scoreboard-bench', now());
COMMIT;
"""  # noqa: E501, S608 - pgbench reads one statement a line; no outside input in it


def _with_db(url: str, name: str) -> str:
    return urlparse(url)._replace(path=f"/{name}").geturl()


def scratch_url(database_url: str) -> str:
    return _with_db(database_url, urlparse(database_url).path.lstrip("/") + "_pgbench")


def prepare(database_url: str) -> tuple[str, int]:
    """Recreate the scratch database from the bench database; return (url, users)."""
    import psycopg

    scratch = scratch_url(database_url)
    recreate_database(scratch)
    tables = [arg for t in TABLES for arg in ("-t", t)]
    for what in ("--schema-only", "--data-only"):
        if what == "--data-only":
            tables = [arg for t in DATA_TABLES for arg in ("-t", t)]
        dump = subprocess.run(
            ["pg_dump", what, "--no-owner", "--no-privileges", *tables, database_url],
            check=True,
            capture_output=True,
        ).stdout
        subprocess.run(
            ["psql", "-q", "-v", "ON_ERROR_STOP=1", scratch],
            input=dump,
            check=True,
            capture_output=True,
        )
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute(
            """UPDATE accounts_user AS u
               SET id = ('00000000-0000-4000-8000-' || lpad(s.n::text, 12, '0'))::uuid
               FROM (SELECT id, row_number() OVER (ORDER BY username) AS n FROM accounts_user) s
               WHERE u.id = s.id"""
        )
        users = conn.execute("SELECT count(*) FROM accounts_user").fetchone()[0]  # type: ignore[index]
        conn.execute("VACUUM ANALYZE")
    return scratch, int(users)


def completion_statements(user_id: Any, action_id: str) -> tuple[list[tuple[str, str]], list[int]]:
    """(verb, table) of each statement inside the transaction of one real completion,
    and the periods it credited.

    Runs `completion_submit` twice in this process (Django set up like the stack's
    servers) and captures the second under `CaptureQueriesContext` (the first finds
    the boards' current periods, as each server process does once).
    """
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from accounts.models import User
    from actions.services import CompletionRequest, action_start, completion_submit

    user = User.objects.get(pk=user_id)

    def submit() -> None:
        raw, _, _ = action_start(user=user, action_id=action_id)
        request = CompletionRequest(
            user=user,
            action_id=action_id,
            raw_token=raw,
            client_timestamp=None,
            ip="127.0.0.1",
            user_agent="scoreboard-bench",
        )
        completion_submit(request=request)

    submit()
    with CaptureQueriesContext(connection) as captured:
        submit()
    shapes: list[tuple[str, str]] = []
    periods: list[int] = []
    inside = False
    for query in captured.captured_queries:
        sql = query["sql"].strip()
        head = sql.split(None, 1)[0].upper()
        if head == "BEGIN":
            inside = True
        elif head in ("COMMIT", "ROLLBACK"):
            inside = False
        elif inside and not head.endswith("SAVEPOINT") and head != "SAVEPOINT":
            table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', sql, re.IGNORECASE)
            lock = re.search(r"FOR (NO KEY UPDATE|UPDATE)", sql) if head == "SELECT" else None
            verb = f"SELECT FOR {lock.group(1)}" if lock else head
            shapes.append((verb, table.group(1) if table else "?"))
            credited = re.search(r"leaderboard_period WHERE id IN \(([0-9, ]+)\)", sql)
            if credited:
                periods = [int(v) for v in credited.group(1).split(",")]
    return shapes, periods


def _latencies_ms(log_dir: Path) -> list[float]:
    values = []
    for path in log_dir.glob("pgbench_log*"):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) >= 3 and fields[2].isdigit():
                values.append(int(fields[2]) / 1000)  # microseconds
    return values


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def summarize(segments: list[dict[str, Any]]) -> dict[str, Any]:
    """Merge pgbench runs of the same variant: TPS over their summed durations."""
    latencies = [v for seg in segments for v in seg["latencies_ms"]]
    transactions = sum(seg["transactions"] for seg in segments)
    seconds = sum(seg["seconds"] for seg in segments)
    wall = sum(seg["wall_seconds"] for seg in segments)
    return {
        "clients": segments[0]["clients"],
        "users": segments[0]["users"],
        "segments": len(segments),
        "seconds": seconds,
        # pgbench's own TPS excludes connection time; summed over the segments.
        "tps": round(sum(seg["tps"] * seg["seconds"] for seg in segments) / seconds, 1),
        "transactions": transactions,
        "failed": sum(seg["failed"] for seg in segments),
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "generator": "pgbench",
        # pgbench's CPU, start-up included, over its wall time (1.0 = one core).
        "generator_cpu_cores": round(sum(seg["cpu_seconds"] for seg in segments) / wall, 3),
    }


def run_segment(
    scratch: str,
    *,
    users: int,
    clients: int,
    seconds: float,
    action: str,
    periods: list[int],
) -> dict[str, Any]:
    """One pgbench run; its figures and every transaction's latency. `periods`: the
    periods each transaction credits (those the real completion credited)."""
    with tempfile.TemporaryDirectory(prefix="bench-pgbench-") as tmp:
        script = Path(tmp) / "completion.sql"
        script.write_text(SCRIPT.replace("%(periods)s", ",".join(str(int(p)) for p in periods)))
        argv = [
            "pgbench",
            "-n",  # no vacuum of pgbench's own tables (there are none)
            "-M",
            "simple",  # like Django's psycopg client-side binding
            "-c",
            str(clients),
            "-j",
            str(min(clients, os.cpu_count() or 1)),
            "-T",
            str(max(1, round(seconds))),
            "-D",
            f"users={users}",
            "-D",
            f"action='{action}'",
            "-f",
            str(script),
            "-l",
            "--log-prefix",
            str(Path(tmp) / "pgbench_log"),
            scratch,
        ]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert proc.stdout is not None
        text = proc.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - started
        if proc.returncode != 0:
            raise RuntimeError(f"pgbench failed ({proc.returncode}):\n{text[-2000:]}")
        latencies = _latencies_ms(Path(tmp))

    def number(pattern: str) -> float | None:
        found = re.search(pattern, text)
        return float(found.group(1)) if found else None

    return {
        "clients": clients,
        "users": users,
        "seconds": max(1, round(seconds)),
        "tps": number(r"tps = ([\d.]+) \(without initial connection time\)") or 0.0,
        "transactions": int(number(r"actually processed: (\d+)") or 0),
        "failed": int(number(r"number of failed transactions: (\d+)") or 0),
        "latencies_ms": latencies,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "wall_seconds": wall,
    }
