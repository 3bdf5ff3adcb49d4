"""What crediting four boards costs a completion, against crediting `global` alone.

A stack scenario (`--only boards`, with bench/boards.py's standalone figures): the same
writer (bench/writer.py), clients and players as the write scenario, in alternating
segments with the boards `daily`, `weekly` and `monthly` active (a completion then
credits four boards: those and `global`) and inactive (`global` only). Between segments
the three boards are switched with `board_save`, and the bench waits out
BOARDS_CACHE_SECONDS so that every server process has re-read them.

Each segment measures accepted completions per second and the CPU (from /proc) of the
processes that serve them: the gunicorn master and workers, the Celery worker and the
PostgreSQL backends connected to the bench database. Redis is the machine's shared one,
so its CPU is not attributable and is left out. The contract (SPEC.md, "Boards and
periods"): CPU per completion with four boards <= 1.2x that with `global` alone, so
accepted/s >= 1/1.2 of it on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from bench import writer
from bench.fanout import _children, _cpu_seconds
from bench.scenarios import BENCH_ACTION, BOARDS, World

CPU_RATIO_LIMIT = 1.2


def _boards_active(active: bool) -> None:
    from leaderboard.boards import board_save

    for slug, period in BOARDS.items():
        board_save(slug=slug, title=f"Bench {period}", period=period, is_active=active)


def _database_backends(database: str) -> dict[int, float]:
    """{pid: CPU seconds} of the PostgreSQL backends of `database` (their process title
    is `postgres: [<cluster>: ]<user> <database> <client> <state>`)."""
    marker = f" {database} ".encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes()
                if title.startswith(b"postgres: ") and marker in title:
                    found[int(entry.name)] = _cpu_seconds(int(entry.name))
    return found


class BackendMeter:
    """The CPU the database's backends spend over a window. A backend can end within it
    (a connection older than CONN_MAX_AGE closes) and new ones start, so /proc is read
    every SAMPLE_SECONDS: an ended backend counts up to its last reading, one born in the
    window counts from zero."""

    SAMPLE_SECONDS = 0.2

    def __init__(self, database: str) -> None:
        self.database = database
        self.start = _database_backends(database)
        self.last = dict(self.start)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(self.SAMPLE_SECONDS):
            self.last.update(_database_backends(self.database))

    def seconds(self) -> float:
        self.stop.set()
        self.thread.join()
        self.last.update(_database_backends(self.database))
        return sum(cpu - self.start.get(pid, 0.0) for pid, cpu in self.last.items())


def _groups(world: World) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {"gunicorn": [], "celery": []}
    for proc in world.stack.processes:
        if proc.popen is None:
            continue
        for name in groups:
            if proc.name.startswith(name):
                groups[name] += [proc.popen.pid, *_children(proc.popen.pid)]
    return groups


def _credits() -> int:
    from leaderboard.models import PeriodCredit

    return PeriodCredit.objects.count()


def _cpu(groups: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(_cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}


async def _segment(
    world: World, args: argparse.Namespace, clients: list[list[str]], seconds: float
) -> dict[str, Any]:
    host, port = world.host_port
    groups = await asyncio.to_thread(_groups, world)
    credits = await asyncio.to_thread(_credits)
    database = urlparse(world.stack.database_url).path.lstrip("/")
    backends = BackendMeter(database)
    before, began = _cpu(groups), time.perf_counter()
    outs = await asyncio.to_thread(
        writer.run_segment,
        host=host,
        port=port,
        action=BENCH_ACTION,
        clients=clients,
        seconds=seconds,
        addresses=world.addresses,
        processes=args.writer_processes,
    )
    wall = time.perf_counter() - began
    after = _cpu(groups)
    cpu = {name: after[name] - before[name] for name in groups}
    cpu["postgres"] = backends.seconds()
    return {
        "outs": outs,
        "credits": await asyncio.to_thread(_credits) - credits,
        "cpu_seconds": cpu,
        "window_seconds": wall,
    }


def _summary(segments: list[dict[str, Any]], clients: int) -> dict[str, Any]:
    merged = writer.summarize([s["outs"] for s in segments], clients=clients, mode="complete")
    accepted = merged["accepted"]
    cpu = {
        name: sum(s["cpu_seconds"][name] for s in segments)
        for name in ("gunicorn", "celery", "postgres")
    }
    total = sum(cpu.values())
    credits = sum(s["credits"] for s in segments)
    per_segment = []
    for s in segments:
        got = sum(o["complete_statuses"].get("200", 0) for o in s["outs"])
        wall = max(o["wall_seconds"] for o in s["outs"])
        spent = sum(s["cpu_seconds"].values())
        per_segment.append(
            {
                "accepted_per_s": round(got / wall, 1) if wall else 0.0,
                "cpu_ms_per_completion": round(1000 * spent / got, 2) if got else None,
            }
        )
    return {
        **merged,
        "server_cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_ms_per_completion": round(1000 * total / accepted, 3) if accepted else None,
        "gunicorn_cpu_ms_per_completion": round(1000 * cpu["gunicorn"] / accepted, 3)
        if accepted
        else None,
        "postgres_cpu_ms_per_completion": round(1000 * cpu["postgres"] / accepted, 3)
        if accepted
        else None,
        # Credits written a completion: 3 with four boards (global has none of its own).
        "credits_per_completion": round(credits / accepted, 3) if accepted else None,
        "per_segment": per_segment,
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def _median(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known), 3) if known else None


async def boards(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """`--boards-rounds` rounds of (four boards, `global` only), each segment `--seconds /
    2` long (at least 2 s), after a warm-up with four boards that builds their periods'
    indexes; the boards are left inactive."""
    from django.conf import settings

    n = args.concurrency
    rounds = max(1, args.boards_rounds)
    seconds = max(2.0, round(args.seconds / 2))
    settle = settings.BOARDS_CACHE_SECONDS + 0.5  # every process re-reads the boards
    clients = [world.tokens[c::n] for c in range(n)]
    host, port = world.host_port

    await asyncio.to_thread(_boards_active, True)
    await asyncio.sleep(settle)
    await asyncio.to_thread(
        writer.run_segment,
        host=host,
        port=port,
        action=BENCH_ACTION,
        clients=clients,
        seconds=2.0,
        addresses=world.addresses,
    )  # warm-up, not counted: the periods' rows and indexes are made on first use
    four, only_global = [], []
    for _ in range(rounds):
        for active, into in ((True, four), (False, only_global)):
            await asyncio.to_thread(_boards_active, active)
            await asyncio.sleep(settle)
            into.append(await _segment(world, args, clients, seconds))
    four_s, global_s = _summary(four, n), _summary(only_global, n)
    cpu_ratio = _ratio(four_s["cpu_ms_per_completion"], global_s["cpu_ms_per_completion"])
    rate_ratio = _ratio(four_s["accepted_per_s"], global_s["accepted_per_s"])
    statuses_ok = set(four_s["complete_statuses"]) == {"200"} and set(
        global_s["complete_statuses"]
    ) == {"200"}
    # Each four-board segment against the `global` one just after it: the machine's
    # other work moves whole segments, and a pair shares most of it.
    pairs = list(zip(four_s["per_segment"], global_s["per_segment"], strict=True))
    cpu_pairs = [_ratio(a["cpu_ms_per_completion"], b["cpu_ms_per_completion"]) for a, b in pairs]
    rate_pairs = [_ratio(a["accepted_per_s"], b["accepted_per_s"]) for a, b in pairs]
    return {
        "rounds": rounds,
        "segment_seconds": seconds,
        "cpu_ratio_of_each_pair": cpu_pairs,
        "accepted_per_s_ratio_of_each_pair": rate_pairs,
        "cpu_ratio_median_of_pairs": _median(cpu_pairs),
        "accepted_per_s_ratio_median_of_pairs": _median(rate_pairs),
        "target": {
            "cpu_ratio_max": CPU_RATIO_LIMIT,
            "rate_ratio_min": round(1 / CPU_RATIO_LIMIT, 3),
        },
        "four boards": four_s,
        "global only (baseline)": global_s,
        "cpu_per_completion_ratio": cpu_ratio,
        "gunicorn_cpu_ratio": _ratio(
            four_s["gunicorn_cpu_ms_per_completion"], global_s["gunicorn_cpu_ms_per_completion"]
        ),
        "postgres_cpu_ratio": _ratio(
            four_s["postgres_cpu_ms_per_completion"], global_s["postgres_cpu_ms_per_completion"]
        ),
        "accepted_per_s_ratio": rate_ratio,
        "met": bool(
            cpu_ratio is not None
            and cpu_ratio <= CPU_RATIO_LIMIT
            and rate_ratio is not None
            and rate_ratio >= 1 / CPU_RATIO_LIMIT
            and statuses_ok
        ),
    }
