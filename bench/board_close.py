"""Closing a period of many participants while completions go on elsewhere.

`measure_close()` (run by bench/boards.py on a filled period) starts a writer process
(`python -m bench.board_close SPEC OUT`) that completes at a steady rate (20 a second:
one thread keeps up with that on loaded cores, where at 50 its schedule fell seconds
behind before any close) for players of their own on a daily board: each completion
is `ledger_award` in its own transaction, so it credits the daily board's period and
the global board and applies both indexes in one Redis script after commit, as a
request's does. After a quiet window the bench
closes the filled period (`period_close`, timed), waits another window, and stops the
writer. Completions whose start fell inside the close are "during"; the rest, in the
same run, the baseline.

Latency is from each completion's scheduled start (the writer keeps a fixed schedule,
so a completion held back also delays the ones queued behind it and none is hidden),
and also its own service time. The contract: the close takes under 60 s and never holds
a completion back more than 100 ms, read here as p99 during the close within 100 ms of
the baseline's p99.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ACTION = "bench-board"
CLOSE_LIMIT_SECONDS = 60.0
HELD_BACK_LIMIT_MS = 100.0


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _stats(samples: list[tuple[float, float, float]]) -> dict[str, Any]:
    late = [s[1] for s in samples]
    service = [s[2] for s in samples]
    return {
        "completions": len(samples),
        "p50_ms": _pct(late, 0.50),
        "p99_ms": _pct(late, 0.99),
        "max_ms": round(max(late), 2) if late else None,
        "service_p50_ms": _pct(service, 0.50),
        "service_p99_ms": _pct(service, 0.99),
    }


def writer_main(argv: list[str] | None = None) -> int:
    """The writer process: completions at `rate` a second until the stop file exists."""
    parser = argparse.ArgumentParser(description="completions at a fixed rate (bench)")
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    import django

    django.setup()
    import uuid

    from django.db import transaction

    from scoreboard.services import ledger_award

    users = [uuid.UUID(u) for u in spec["users"]]
    stop = Path(spec["stop"])
    interval = 1.0 / spec["rate"]
    samples: list[tuple[float, float, float]] = []  # (wall start, latency ms, service ms)
    began_cpu = time.process_time()
    due = time.perf_counter()
    offset = time.time() - due  # perf_counter -> wall clock, for the close's window
    i = 0
    while not stop.exists():
        wait = due - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        with transaction.atomic():
            ledger_award(user_id=users[i % len(users)], delta=1, action_id=ACTION)
        t1 = time.perf_counter()
        samples.append((due + offset, (t1 - due) * 1000, (t1 - t0) * 1000))
        i += 1
        due += interval
    args.out.write_text(
        json.dumps({"samples": samples, "cpu_seconds": time.process_time() - began_cpu})
    )
    return 0


def _writer_users(count: int) -> list[str]:
    from django.contrib.auth.hashers import make_password

    from accounts.models import User

    password = make_password(None)
    User.objects.bulk_create(
        [
            User(username=f"closer{i:04d}", email=f"closer{i:04d}@example.com", password=password)
            for i in range(count)
        ],
        ignore_conflicts=True,
    )
    return [
        str(pk)
        for pk in User.objects.filter(username__startswith="closer").values_list("pk", flat=True)
    ]


def _timed(name: str, function: Callable[..., Any], into: dict[str, float]) -> Callable[..., Any]:
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        into[f"{name}_began_at"] = time.time()
        try:
            return function(*args, **kwargs)
        finally:
            into[name] = round(into.get(name, 0.0) + time.monotonic() - began, 2)

    return timed


def _close(period_id: int, now: datetime) -> tuple[list[dict[str, Any]], Any]:
    """`period_close` as the periodic task runs it (the settings' statement timeout and
    client bound); when that fails, again without them, to see how long it takes. Each
    attempt's time, and the time inside its two steps (the standings' INSERT ... SELECT
    with their checksum read back, and that read alone)."""
    from django.db import OperationalError, connection

    from bench.index import unbounded_statements
    from leaderboard import closing

    attempts: list[dict[str, Any]] = []
    originals = closing._write_standings, closing._standings_checksum
    try:
        for bounded in (True, False):
            steps: dict[str, float] = {}
            closing._write_standings = _timed("write_standings", originals[0], steps)
            closing._standings_checksum = _timed("checksum_read", originals[1], steps)
            began = time.monotonic()
            attempt: dict[str, Any] = {"timeouts": "settings" if bounded else "none"}
            attempts.append(attempt)
            try:
                if bounded:
                    closed = closing.period_close(period_id, now=now)
                else:
                    with unbounded_statements():
                        closed = closing.period_close(period_id, now=now)
            except OperationalError as exc:
                attempt["error"] = str(exc).splitlines()[0]
                connection.close()  # core.dbwait may have closed psycopg's
                closed = None
            attempt["seconds"] = round(time.monotonic() - began, 2)
            # write_standings includes checksum_read (it returns that read's result).
            steps["insert_select"] = round(
                steps.get("write_standings", 0.0) - steps.get("checksum_read", 0.0), 2
            )
            steps["rest_and_commit"] = round(
                attempt["seconds"] - steps.get("write_standings", 0.0), 2
            )
            attempt["steps_seconds"] = steps
            if "error" not in attempt:
                return attempts, closed
    finally:
        closing._write_standings, closing._standings_checksum = originals
    return attempts, None


def measure_close(
    period_id: int, *, ends_at: datetime, rate: float, quiet_seconds: float
) -> dict[str, Any]:
    """Close `period_id` (ended at `ends_at`) while the writer completes elsewhere."""
    from django.conf import settings
    from django.db import connection

    from leaderboard.boards import board_save
    from leaderboard.models import Period, PeriodCredit

    board_save(slug="daily", title="Bench day", period="day")
    users = _writer_users(200)
    with tempfile.TemporaryDirectory(prefix="bench-close-") as tmp:
        spec = {"users": users, "rate": rate, "stop": str(Path(tmp) / "stop")}
        (Path(tmp) / "spec.json").write_text(json.dumps(spec))
        out = Path(tmp) / "out.json"
        writer = subprocess.Popen(
            [sys.executable, "-m", "bench.board_close", str(Path(tmp) / "spec.json"), str(out)],
            cwd=ROOT,
            env=dict(os.environ),
        )
        try:
            time.sleep(quiet_seconds + 4.0)  # its Django import, a warm-up, the baseline
            now = ends_at + timedelta(seconds=settings.BOARDS_CLOSE_GRACE_SECONDS + 1)
            cpu0 = time.process_time()
            started = time.time()
            attempts, closed = _close(period_id, now)
            finished = time.time()
            close_cpu = time.process_time() - cpu0
            time.sleep(quiet_seconds)
        finally:
            Path(spec["stop"]).touch()
            writer.wait(timeout=60)
        if writer.returncode != 0:
            raise RuntimeError(f"the close's writer exited with {writer.returncode}")
        result = json.loads(out.read_text())
    connection.close()
    samples = [tuple(s) for s in result["samples"]]
    warm = samples[0][0] + 3.0 if samples else 0.0  # its first seconds: warm-up
    during = [s for s in samples if started <= s[0] <= finished]
    without = [s for s in samples if s[0] >= warm and not started <= s[0] <= finished]
    seconds = finished - started
    base, busy = _stats(without), _stats(during)
    held = (
        round(busy["p99_ms"] - base["p99_ms"], 2)
        if busy["p99_ms"] is not None and base["p99_ms"] is not None
        else None
    )
    # When the slowest completions started, in seconds from the close's start, and when
    # its steps began: which step holds them back.
    for attempt in attempts:
        for key in [k for k in attempt["steps_seconds"] if k.endswith("_began_at")]:
            attempt["steps_seconds"][key] = round(attempt["steps_seconds"][key] - started, 2)
    slowest = sorted(during, key=lambda s: -s[1])[:10]
    period = Period.objects.get(pk=period_id)
    daily = PeriodCredit.objects.filter(period__board__slug="daily").count()
    return {
        "participants": closed.participants if closed else None,
        "state_after": period.state,
        "attempts": attempts,
        # With the settings' timeouts when that attempt closed it, else the whole window.
        "closed_with_settings_timeouts": "error" not in attempts[0],
        "close_seconds": round(seconds, 2),
        "close_cpu_seconds_this_process": round(close_cpu, 2),
        "writer_rate_per_s": rate,
        # Each of the writer's completions credited the daily board (and `global`).
        "daily_credits_per_completion": round(daily / len(samples), 3) if samples else None,
        "completions during the close": busy,
        "completions without the close (baseline)": base,
        "p99_held_back_ms": held,
        "slowest_during": [
            {"at_s": round(s[0] - started, 2), "ms": round(s[1], 1), "service_ms": round(s[2], 1)}
            for s in slowest
        ],
        "generator_cpu_cores": round(
            result["cpu_seconds"] / max(1e-9, samples[-1][0] - samples[0][0]), 3
        )
        if len(samples) > 1
        else None,
        "target": {"close_seconds": CLOSE_LIMIT_SECONDS, "held_back_ms": HELD_BACK_LIMIT_MS},
        "met": bool(
            closed is not None
            and "error" not in attempts[0]
            and seconds < CLOSE_LIMIT_SECONDS
            and held is not None
            and held <= HELD_BACK_LIMIT_MS
            and busy["completions"] > 0
        ),
    }


if __name__ == "__main__":
    sys.exit(writer_main())
