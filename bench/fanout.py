"""Live fan-out: commit-to-viewer latency at audience sizes, against a raw broadcast server.

For each viewer count N (`--viewers 1000,5000,10000`), in the same run:

1. baseline: `bench.raw_server` (one process, `websockets`) with N sockets pushes an
   update of the service's size `--rate` times a second; latency is from its push time
   (carried in the frame) to a viewer's arrival;
2. the service: N sockets through nginx to the daphne processes while `--rate`
   completions a second (open loop, one of ten players each time, each changing the top
   10) go through the REST API; latency is from the ledger entry's `created_at` (taken in
   the completion's transaction, just before commit) to the arrival at a viewer of the
   first push that shows the new score. Every (completion, viewer) pair is counted: one
   that never arrives is reported as unseen.

Viewers are a lean raw-frame swarm (`bench.swarm`) in a few processes whose CPU is
reported, as is the CPU of the servers. Memory per socket is the growth of the servers'
RSS while the N sockets connect, divided by N, after both servers have served a few
viewers (`WARM_VIEWERS`, connected then closed): what a server allocates once, on its
first viewers (imports, thread pools, its Redis subscription), is not a cost per socket.
`--idle N` also holds N idle sockets on one daphne process (directly, no nginx) and on
the raw server.

Boards are in place for the whole scenario: five boards (`FANOUT_BOARDS`: day, week and
month, and a day and a week of other rules) count the fan-out's action, so each of its
completions credits `global` and those five. `--board-viewers BxN` (on in `make bench`,
off in `--quick`) then measures the boards' sockets (`/ws/boards/<slug>/`) in
`--board-rounds` rounds of two alternating runs at the same completion rate: N viewers on
each of B boards at once, against B x N viewers on one board. Both runs use B swarm
processes of N sockets each, so only the boards they watch differ. Latency is from the
credit's instant (the ledger entry's time) to a viewer's arrival of the first push of its
board whose entries show the user's new score in that board's period.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.swarm import Swarm, Target
from deploy.stack import (
    ROOT,
    NginxSizing,
    Process,
    Stack,
    free_port,
    nginx_binary,
    nginx_config,
    wait_http,
)

FANOUT_ACTION = "bench-fanout"
PLAYERS = 10
# The boards in place during the scenario (board_save's fields); each counts only the
# fan-out's action, so only its ten players are on them and each completion changes each
# board's top 10.
FANOUT_BOARDS: dict[str, dict[str, Any]] = {
    "fan-daily": {"period": "day"},
    "fan-weekly": {"period": "week"},
    "fan-monthly": {"period": "month"},
    "fan-daily-paris": {"period": "day", "timezone": "Europe/Paris"},
    "fan-weekly-sunday": {"period": "week", "week_starts_on": 7},
}
# Viewers on B boards at once must see a completion within this factor of the p99 of as
# many viewers on one board (issue 24).
BOARDS_VS_ONE = 1.2
SOURCE_IPS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
TICKS = os.sysconf("SC_CLK_TCK")


# -- process accounting (Linux /proc) ---------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def _rss_bytes(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError):
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return found


class Meter:
    """CPU (share of one core) and RSS of named groups of processes over a window."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self.groups = groups
        self.start = (time.perf_counter(), {n: self._cpu(p) for n, p in groups.items()})

    @staticmethod
    def _cpu(pids: list[int]) -> float:
        return sum(_cpu_seconds(pid) for pid in pids)

    def rss(self) -> dict[str, int]:
        return {name: sum(_rss_bytes(pid) for pid in pids) for name, pids in self.groups.items()}

    def cpu_percent(self) -> dict[str, float]:
        wall = time.perf_counter() - self.start[0]
        return {
            name: round(100 * (self._cpu(pids) - self.start[1][name]) / wall, 1)
            for name, pids in self.groups.items()
        }


# -- analysis ---------------------------------------------------------------------------


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)


def _latencies(
    workers: list[dict[str, Any]], first_version: dict[int, int], commits: dict[int, float]
) -> tuple[list[float], int, int]:
    """Latency of every (event, viewer) pair: the first arrival of a version >= the event's.

    `first_version` maps an event to the first version that shows it, `commits` an event
    to its commit time. Returns (latencies, pairs seen, pairs unseen).
    """
    latencies: list[float] = []
    unseen = 0
    for worker in workers:
        times = worker["times"]
        versions = sorted(times)
        for event, version in first_version.items():
            later = [times[v] for v in versions if v >= version]
            committed = commits[event]
            for index in range(worker["count"]):
                for row in later:
                    arrived = row[index]
                    if not math.isnan(arrived):
                        latencies.append(arrived - committed)
                        break
                else:
                    unseen += 1
    return latencies, len(latencies), unseen


def _samples(workers: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    merged: dict[int, dict[str, Any]] = {}
    for worker in workers:
        for version, payload in worker["samples"].items():
            if version not in merged:
                merged[version] = json.loads(payload)
    return merged


def _swarm_cpu(workers: list[dict[str, Any]]) -> dict[str, Any]:
    per = [round(100 * w["cpu_seconds"] / w["wall_seconds"], 1) for w in workers]
    return {"swarm_cpu_percent_per_process": per, "swarm_cpu_percent_total": round(sum(per), 1)}


def _summary(
    n: int, connected: dict[str, Any], workers: list[dict[str, Any]], lat: tuple
) -> dict[str, Any]:
    latencies, seen, unseen = lat
    return {
        "viewers": n,
        "connected": connected["ready"],
        "refused": connected["refused"],
        "connect_seconds": connected["connect_seconds"],
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": _pct(latencies, 1.0),
        "pairs_seen": seen,
        "pairs_unseen": unseen,
        "closed_during_run": sum(w["closed_during_run"] for w in workers),
        **_swarm_cpu(workers),
    }


# -- the baseline -----------------------------------------------------------------------


class RawServer:
    def __init__(self, rate: float) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.raw_server",
                "--port",
                str(self.port),
                "--rate",
                str(rate),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            self.stop()
            raise RuntimeError("raw server did not start")

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=5)


class RawBehindNginx:
    """An nginx with the stack's configuration whose `ws` upstream is the raw server."""

    def __init__(self, raw: RawServer, web_port: int) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="scoreboard-raw-nginx-"))
        (self.workdir / "nginx-temp").mkdir(mode=0o777)
        self.workdir.chmod(0o755)
        self.port = free_port()
        conf = self.workdir / "nginx.conf"
        conf.write_text(
            nginx_config(
                port=self.port,
                web=[web_port],
                ws=[raw.port],
                workdir=self.workdir,
                sizing=NginxSizing.for_this_machine(),
            )
        )
        argv = [nginx_binary(), "-c", str(conf), "-p", str(self.workdir)]
        self.proc = Process("raw-nginx", argv, dict(os.environ), self.workdir / "nginx.log")
        self.proc.start()
        wait_http(f"http://127.0.0.1:{self.port}/healthz", proc=self.proc)

    def pids(self) -> list[int]:
        pid = self.proc.popen.pid  # type: ignore[union-attr]
        return [pid, *_children(pid)]

    def stop(self) -> None:
        self.proc.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


# Viewers connected and closed before a server's memory is measured (see the docstring).
WARM_VIEWERS = 50


def _warm(target: Target) -> None:
    swarm = Swarm(target, WARM_VIEWERS, processes=1)
    try:
        swarm.connect()
    finally:
        swarm.close()


async def _raw_run(
    n: int, args: argparse.Namespace, *, behind_nginx_of: Stack | None = None
) -> dict[str, Any]:
    server = RawServer(args.rate)
    proxy = RawBehindNginx(server, behind_nginx_of.web_ports[0]) if behind_nginx_of else None
    target = (
        Target("127.0.0.1", proxy.port, "/ws/leaderboard/", SOURCE_IPS)
        if proxy
        else Target("127.0.0.1", server.port, "/", SOURCE_IPS)
    )
    await asyncio.to_thread(_warm, target)
    swarm = Swarm(target, n, processes=args.swarm)
    groups = {"raw": [server.proc.pid], **({"nginx": proxy.pids()} if proxy else {})}
    try:
        meter = Meter(groups)
        rss_before = meter.rss()["raw"]
        connected = await asyncio.to_thread(swarm.connect)
        rss_after = meter.rss()["raw"]
        await asyncio.sleep(1.0)
        swarm.measure()
        meter = Meter(groups)
        await asyncio.sleep(args.seconds + 1.0)
        workers = await asyncio.to_thread(swarm.stop)
        cpu = meter.cpu_percent()
    finally:
        await asyncio.to_thread(swarm.close)
        if proxy:
            proxy.stop()
        server.stop()
    samples = _samples(workers)
    # The raw server's every push is an event of its own, committed at its push time.
    window = sorted(samples)[1:-1] if len(samples) > 2 else sorted(samples)
    lat = _latencies(workers, {v: v for v in window}, {v: samples[v]["t"] for v in window})
    return {
        **_summary(n, connected, workers, lat),
        "events": len(window),
        "server_cpu_percent": cpu,
        "rss_per_socket_kib": round(
            (rss_after - rss_before) / max(1, connected["ready"]) / 1024, 1
        ),
    }


# -- the service ------------------------------------------------------------------------


def _players(world: Any) -> list[tuple[str, str]]:
    """Ten players far above everyone else, so each completion changes the top 10."""
    from datetime import timedelta

    from django.contrib.auth.hashers import make_password
    from django.db import transaction
    from django.utils import timezone
    from rest_framework_simplejwt.tokens import RefreshToken

    from accounts.models import User
    from actions.models import ActionType
    from scoreboard.services import ledger_award

    ActionType.objects.update_or_create(
        id=FANOUT_ACTION,
        defaults={
            "name": "Fan-out benchmark",
            "reward": 1,
            "cooldown_seconds": 0,
            "min_duration_seconds": 0,
            "daily_cap": None,
            "active": True,
        },
    )
    players = []
    for i in range(PLAYERS):
        # A month old, like the write scenario's players (the new-account rule is for
        # new ones); each completes from an address of its own (`_drive`).
        user, created = User.objects.get_or_create(
            username=f"fan{i:05d}",
            defaults={
                "email": f"fan{i:05d}@example.com",
                "password": make_password(None),
                "date_joined": timezone.now() - timedelta(days=30),
            },
        )
        if created:
            with transaction.atomic():
                ledger_award(user_id=user.pk, delta=1_000_000_000 + i, note="fan-out benchmark")
        players.append((str(user.pk), str(RefreshToken.for_user(user).access_token)))
    return players


def _commits(player_ids: list[str], since: float) -> list[tuple[str, int, float]]:
    from datetime import UTC, datetime

    from scoreboard.models import ScoreEntry

    rows = ScoreEntry.objects.filter(
        user_id__in=player_ids,
        action_id=FANOUT_ACTION,
        created_at__gte=datetime.fromtimestamp(since, UTC) - timedelta(seconds=1),
    ).values_list("user_id", "score_after", "created_at")
    return [(str(user), score, created.timestamp()) for user, score, created in rows]


def _first_versions(
    commits: list[tuple[str, int, float]], samples: dict[int, dict[str, Any]]
) -> tuple[dict[int, int], dict[int, float]]:
    """For each (user, score after, commit time): the first pushed version whose entries
    show that score, and the commit time, both keyed by the event's index."""
    first_version: dict[int, int] = {}
    commit_times: dict[int, float] = {}
    for event, (user, score, committed) in enumerate(commits):
        commit_times[event] = committed
        shown = [
            v
            for v, frame in samples.items()
            if any(e["userId"] == user and e["score"] >= score for e in frame["entries"])
        ]
        # A completion no push ever showed counts as unseen by every viewer.
        first_version[event] = min(shown) if shown else max(samples, default=0) + 1
    return first_version, commit_times


async def _drive(
    stack: Stack, players: list[tuple[str, str]], rate: float, seconds: float
) -> dict[int, int]:
    """Open loop: `rate` completions a second for `seconds`; returns the statuses."""
    statuses: dict[int, int] = {}
    # One client a player, bound to the player's own loopback address (127.3.0.k): the
    # farm rule, at its default weight, sees one account an address.
    clients = [
        httpx.AsyncClient(
            base_url=stack.url,
            timeout=30,
            transport=httpx.AsyncHTTPTransport(local_address=f"127.3.0.{k + 1}"),
        )
        for k in range(len(players))
    ]
    async with contextlib.AsyncExitStack() as opened:
        for c in clients:
            await opened.enter_async_context(c)

        async def complete(k: int) -> None:
            _, token = players[k % len(players)]
            client = clients[k % len(players)]
            headers = {"Authorization": f"Bearer {token}"}
            try:
                started = await client.post(
                    f"/api/v1/actions/{FANOUT_ACTION}/start/", headers=headers
                )
                status = started.status_code
                if status == 201:
                    done = await client.post(
                        "/api/v1/actions/complete/",
                        headers=headers,
                        json={
                            "actionId": FANOUT_ACTION,
                            "actionToken": started.json()["actionToken"],
                        },
                    )
                    status = done.status_code
            except httpx.HTTPError:
                status = 0
            statuses[status] = statuses.get(status, 0) + 1

        began = time.monotonic()
        tasks = []
        for k in range(int(rate * seconds)):
            await asyncio.sleep(max(0.0, began + k / rate - time.monotonic()))
            tasks.append(asyncio.create_task(complete(k)))
        await asyncio.gather(*tasks)
    return statuses


def _server_groups(stack: Stack) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {"daphne": [], "nginx": [], "gunicorn": []}
    for proc in stack.processes:
        if proc.popen is None:
            continue
        for name in groups:
            if proc.name.startswith(name):
                pid = proc.popen.pid
                groups[name] += [pid, *_children(pid)]
    return groups


@dataclass
class Driven:
    """A measured window of completions under the swarms' sockets."""

    since: float
    statuses: dict[int, int]
    stopped: list[Any]  # each swarm's workers' results
    cpu: dict[str, float]
    parent_cpu: float
    elapsed: float


async def _driven(
    stack: Stack,
    players: list[tuple[str, str]],
    args: argparse.Namespace,
    groups: dict[str, list[int]],
    swarms: list[Swarm],
) -> Driven:
    """Drive the completions, wait for the last coalesced push, stop the swarms: the
    servers' and this process's CPU over the window."""
    meter = Meter(groups)
    since = time.time()
    parent_cpu = time.process_time()
    statuses = await _drive(stack, players, args.rate, args.seconds)
    parent_cpu = time.process_time() - parent_cpu
    await asyncio.sleep(1.5)  # the last coalesced push
    stopped = await asyncio.gather(*(asyncio.to_thread(s.stop) for s in swarms))
    return Driven(
        since, statuses, list(stopped), meter.cpu_percent(), parent_cpu, time.time() - since
    )


async def _stack_run(
    n: int, world: Any, players: list[tuple[str, str]], args: argparse.Namespace
) -> dict[str, Any]:
    stack = world.stack
    target = Target("127.0.0.1", stack.port, "/ws/leaderboard/", SOURCE_IPS)
    await asyncio.to_thread(_warm, target)
    swarm = Swarm(target, n, processes=args.swarm)
    groups = _server_groups(stack)
    try:
        meter = Meter(groups)
        rss_before = meter.rss()["daphne"]
        connected = await asyncio.to_thread(swarm.connect)
        rss_after = meter.rss()["daphne"]
        await asyncio.sleep(1.0)
        swarm.measure()
        driven = await _driven(stack, players, args, groups, [swarm])
        workers = driven.stopped[0]
    finally:
        await asyncio.to_thread(swarm.close)
    since, statuses, cpu = driven.since, driven.statuses, driven.cpu
    parent_cpu, elapsed = driven.parent_cpu, driven.elapsed
    commits = await asyncio.to_thread(_commits, [p for p, _ in players], since)
    samples = _samples(workers)
    lat = _latencies(workers, *_first_versions(commits, samples))
    return {
        **_summary(n, connected, workers, lat),
        "completions": len(commits),
        "completion_statuses": statuses,
        "pushes": len(samples),
        "server_cpu_percent": cpu,
        "driver_cpu_percent": round(100 * parent_cpu / elapsed, 1),
        "rss_per_socket_kib": round(
            (rss_after - rss_before) / max(1, connected["ready"]) / 1024, 1
        ),
    }


async def _idle(world: Any, n: int, args: argparse.Namespace) -> dict[str, Any]:
    """N idle sockets on ONE daphne process (directly) and on the raw server."""
    stack = world.stack
    daphne = next(p for p in stack.processes if p.name == "daphne-0")
    pid = daphne.popen.pid  # type: ignore[union-attr]
    out: dict[str, Any] = {}
    for name, port, path, pids, stop in [
        ("daphne", stack.ws_ports[0], "/ws/leaderboard/", [pid], None),
        *[("raw", s.port, "/", [s.proc.pid], s.stop) for s in [RawServer(0.1)]],
    ]:
        swarm = Swarm(
            Target("127.0.0.1", port, path, SOURCE_IPS), n, processes=args.swarm, parallel=50
        )
        try:
            meter = Meter({name: pids})
            before = meter.rss()[name]
            connected = await asyncio.to_thread(swarm.connect, 600.0)
            after = meter.rss()[name]
        finally:
            await asyncio.to_thread(swarm.close)
            if stop:
                stop()
        out[name] = {
            "asked": n,
            "held": connected["ready"],
            "refused": connected["refused"],
            "connect_seconds": connected["connect_seconds"],
            "rss_per_socket_kib": round((after - before) / max(1, connected["ready"]) / 1024, 1),
        }
        await asyncio.sleep(3.0)  # let the server reap the closed sockets
    out["rss_per_socket_vs_raw"] = (
        round(out["daphne"]["rss_per_socket_kib"] / out["raw"]["rss_per_socket_kib"], 2)
        if out["raw"]["rss_per_socket_kib"]
        else None
    )
    return out


# -- the boards' sockets -----------------------------------------------------------------


def _boards_in_place() -> list[str]:
    """Create (or keep) the scenario's boards, each counting only the fan-out's action."""
    from leaderboard.boards import board_save

    for slug, fields in FANOUT_BOARDS.items():
        board_save(
            slug=slug,
            title=f"Fan-out {slug[4:]}",
            action_types=[FANOUT_ACTION],
            is_active=True,
            **fields,
        )
    return list(FANOUT_BOARDS)


def _board_commits(
    slugs: list[str], player_ids: list[str], since: float
) -> dict[str, list[tuple[str, int, float]]]:
    """Per board: (user, the user's score in the period after the credit, the credit's
    instant) of each credit since `since` (less a second, as `_commits`)."""
    from leaderboard.models import PeriodCredit

    rows = (
        PeriodCredit.objects.filter(period__board__slug__in=slugs, user_id__in=player_ids)
        .order_by("entry_id")
        .values_list("period__board__slug", "period_id", "user_id", "delta", "at")
    )
    totals: dict[tuple[int, str], int] = {}
    out: dict[str, list[tuple[str, int, float]]] = {slug: [] for slug in slugs}
    for slug, period, user, delta, at in rows:
        key = (period, str(user))
        totals[key] = totals.get(key, 0) + delta
        if at.timestamp() >= since - 1.0:
            out[slug].append((str(user), totals[key], at.timestamp()))
    return out


def _parse_board_viewers(spec: str) -> tuple[int, int] | None:
    """`5x1000` -> (5 boards, 1,000 viewers each); empty -> None."""
    if not spec.strip():
        return None
    boards, _, per = spec.lower().partition("x")
    return int(boards), int(per)


async def _board_run(
    slugs: list[str], per: int, world: Any, players: list[tuple[str, str]], args: argparse.Namespace
) -> tuple[dict[str, Any], tuple[list[float], int, int]]:
    """`per` viewers on each entry of `slugs` (one swarm process each; a slug may repeat)
    while the completions run; the summary and the pooled (latencies, seen, unseen)."""
    stack = world.stack
    swarms = [
        Swarm(
            Target("127.0.0.1", stack.port, f"/ws/boards/{slug}/", SOURCE_IPS),
            per,
            processes=1,
            parallel=50,
        )
        for slug in slugs
    ]
    groups = _server_groups(stack)
    try:
        replies = await asyncio.gather(*(asyncio.to_thread(s.connect) for s in swarms))
        await asyncio.sleep(1.0)
        for swarm in swarms:
            swarm.measure()
        driven = await _driven(stack, players, args, groups, swarms)
        results = driven.stopped
    finally:
        await asyncio.gather(*(asyncio.to_thread(s.close) for s in swarms))
    since, statuses, cpu = driven.since, driven.statuses, driven.cpu
    parent_cpu, elapsed = driven.parent_cpu, driven.elapsed
    commits = await asyncio.to_thread(
        _board_commits, sorted(set(slugs)), [p for p, _ in players], since
    )
    latencies: list[float] = []
    seen = unseen = 0
    pushes = []
    for slug, workers in zip(slugs, results, strict=True):
        samples = _samples(workers)
        pushes.append(len(samples))
        got, s_seen, s_unseen = _latencies(workers, *_first_versions(commits[slug], samples))
        latencies += got
        seen += s_seen
        unseen += s_unseen
    refused: dict[str, int] = {}
    for reply in replies:
        for reason, n in reply["refused"].items():
            refused[reason] = refused.get(reason, 0) + n
    connected = {
        "ready": sum(r["ready"] for r in replies),
        "refused": refused,
        "connect_seconds": max(r["connect_seconds"] for r in replies),
    }
    lat = (latencies, seen, unseen)
    workers_all = [w for workers in results for w in workers]
    summary = {
        **_summary(per * len(slugs), connected, workers_all, lat),
        "boards": slugs,
        "completions": len(commits[slugs[0]]),
        "completion_statuses": statuses,
        "pushes_per_group": pushes,
        "server_cpu_percent": cpu,
        "driver_cpu_percent": round(100 * parent_cpu / elapsed, 1),
    }
    return summary, lat


def _median(values: list[float | None]) -> float | None:
    known = sorted(v for v in values if v is not None)
    if not known:
        return None
    middle = len(known) // 2
    return known[middle] if len(known) % 2 else round((known[middle - 1] + known[middle]) / 2, 1)


def _pooled(runs: list[tuple[dict[str, Any], tuple[list[float], int, int]]]) -> dict[str, Any]:
    latencies = [x for _, (lat, _, _) in runs for x in lat]
    cpu = [r["server_cpu_percent"] for r, _ in runs]
    return {
        "p50_ms": _pct(latencies, 0.50),
        "p99_ms": _pct(latencies, 0.99),
        "max_ms": _pct(latencies, 1.0),
        "pairs_seen": sum(seen for _, (_, seen, _) in runs),
        "pairs_unseen": sum(unseen for _, (_, _, unseen) in runs),
        "median_run_p99_ms": _median([r["p99_ms"] for r, _ in runs]),
        "connected": min(r["connected"] for r, _ in runs),
        "daphne_cpu_percent": round(sum(c["daphne"] for c in cpu) / len(cpu), 1),
        "swarm_cpu_percent_total": round(
            sum(r["swarm_cpu_percent_total"] for r, _ in runs) / len(runs), 1
        ),
        "driver_cpu_percent": round(sum(r["driver_cpu_percent"] for r, _ in runs) / len(runs), 1),
        "runs": [r for r, _ in runs],
    }


async def _boards_fanout(
    world: Any,
    players: list[tuple[str, str]],
    slugs: list[str],
    layout: tuple[int, int],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """`--board-rounds` rounds of (B x N on one board, N on each of B boards), the order
    reversed every other round. The figure is the ratio of the layouts' medians of their
    runs' p99: with 40 completions a run, one stalled completion is a run's p99, and a
    stall of the shared machine in one run moved a pooled p99 by 3x (the pooled ratio
    and each round's are kept too)."""
    count, per = layout
    if count > len(slugs):
        raise ValueError(f"--board-viewers asks for {count} boards; the scenario has {len(slugs)}")
    chosen = slugs[:count]
    layouts = {"one board": [chosen[0]] * count, "each board": chosen}
    runs: dict[str, list[Any]] = {name: [] for name in layouts}
    for round_ in range(max(1, args.board_rounds)):
        order = list(layouts) if round_ % 2 == 0 else list(reversed(layouts))
        for name in order:
            print(f"   boards: {name}, {count} x {per} viewers (round {round_ + 1})", flush=True)
            runs[name].append(await _board_run(layouts[name], per, world, players, args))
            await asyncio.sleep(3.0)
    one, each = _pooled(runs["one board"]), _pooled(runs["each board"])
    a, b = each["median_run_p99_ms"], one["median_run_p99_ms"]
    ratio = round(a / b, 2) if a and b else None
    pooled = round(each["p99_ms"] / one["p99_ms"], 2) if each["p99_ms"] and one["p99_ms"] else None
    per_round = [
        round(e["p99_ms"] / o["p99_ms"], 2) if e["p99_ms"] and o["p99_ms"] else None
        for (o, _), (e, _) in zip(runs["one board"], runs["each board"], strict=True)
    ]
    return {
        "boards": chosen,
        "viewers_per_board": per,
        "sockets": count * per,
        "rounds": max(1, args.board_rounds),
        "one board": one,
        "each board": each,
        "p99_ratio": ratio,
        "pooled_p99_ratio": pooled,
        "p99_ratio_of_each_round": per_round,
        "target_ratio": BOARDS_VS_ONE,
        "met": bool(
            ratio is not None
            and ratio <= BOARDS_VS_ONE
            and one["pairs_unseen"] == 0
            and each["pairs_unseen"] == 0
            and one["connected"] == each["connected"] == count * per
        ),
    }


async def fanout(world: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Commit-to-viewer latency at each viewer count, service against the raw server."""
    from django.conf import settings

    sizes = [int(v) for v in str(args.viewers).split(",") if v.strip()]
    players = await asyncio.to_thread(_players, world)
    slugs = await asyncio.to_thread(_boards_in_place)
    await asyncio.sleep(settings.BOARDS_CACHE_SECONDS + 0.5)  # every process sees them
    # Not counted: the first credit of a new period builds its index (cold), and a
    # worker's first completions load what it has not used yet. With 40 events a size,
    # one slow event is the p99.
    await _drive(world.stack, players, args.rate, 2.0)
    await asyncio.sleep(2.0)
    rows = []
    for n in sizes:
        print(f"   {n} viewers: raw baseline", flush=True)
        raw = await _raw_run(n, args)
        await asyncio.sleep(2.0)
        print(f"   {n} viewers: raw baseline through nginx", flush=True)
        raw_nginx = await _raw_run(n, args, behind_nginx_of=world.stack)
        await asyncio.sleep(2.0)
        print(f"   {n} viewers: service through nginx", flush=True)
        service = await _stack_run(n, world, players, args)
        await asyncio.sleep(3.0)
        ratio = (
            round(service["p99_ms"] / raw["p99_ms"], 1)
            if service["p99_ms"] and raw["p99_ms"]
            else None
        )
        ratio_nginx = (
            round(service["p99_ms"] / raw_nginx["p99_ms"], 1)
            if service["p99_ms"] and raw_nginx["p99_ms"]
            else None
        )
        rows.append(
            {
                "viewers": n,
                "service": service,
                "raw": raw,
                "raw_through_nginx": raw_nginx,
                "p99_vs_raw": ratio,
                "p99_vs_raw_through_nginx": ratio_nginx,
            }
        )
    result: dict[str, Any] = {
        "rate_per_s": args.rate,
        "seconds": args.seconds,
        "daphne_processes": len(world.stack.ws_ports),
        "boards_in_place": ["global", *slugs],
        "sizes": rows,
    }
    layout = _parse_board_viewers(getattr(args, "board_viewers", "") or "")
    if layout:
        result["boards"] = await _boards_fanout(world, players, slugs, layout, args)
    if args.idle:
        print(
            f"   {args.idle} idle sockets on one daphne process and on the raw server", flush=True
        )
        result["idle"] = await _idle(world, args.idle, args)
    print(markdown(result), flush=True)
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "| viewers | connected | service p50 / p99 ms | raw p50 / p99 ms (ratio of p99) "
        "| raw through nginx p50 / p99 ms (ratio) | unseen pairs | daphne CPU % "
        "| swarm CPU % (service / raw) | KiB per socket (service / raw) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["sizes"]:
        s, r, rn = row["service"], row["raw"], row["raw_through_nginx"]
        lines.append(
            f"| {row['viewers']} | {s['connected']} | {s['p50_ms']} / {s['p99_ms']} "
            f"| {r['p50_ms']} / {r['p99_ms']} ({row['p99_vs_raw']}) "
            f"| {rn['p50_ms']} / {rn['p99_ms']} ({row['p99_vs_raw_through_nginx']}) "
            f"| {s['pairs_unseen']} of {s['pairs_seen'] + s['pairs_unseen']} "
            f"| {s['server_cpu_percent']['daphne']} "
            f"| {s['swarm_cpu_percent_total']} / {r['swarm_cpu_percent_total']} "
            f"| {s['rss_per_socket_kib']} / {r['rss_per_socket_kib']} |"
        )
    if "boards" in result:
        b = result["boards"]
        lines.append("")
        lines.append(
            "| boards | viewers | connected | p50 / p99 ms (each run's p99) | unseen pairs "
            "| pushes per group | daphne CPU % | swarm CPU % |"
        )
        lines.append("|---|---|---|---|---|---|---|---|")
        for name in ("one board", "each board"):
            r = b[name]
            boards = b["boards"][:1] if name == "one board" else b["boards"]
            runs = ", ".join(str(x["p99_ms"]) for x in r["runs"])
            lines.append(
                f"| {name}: {', '.join(boards)} | {b['sockets']} | {r['connected']} "
                f"| {r['p50_ms']} / {r['p99_ms']} ({runs}) "
                f"| {r['pairs_unseen']} of {r['pairs_seen'] + r['pairs_unseen']} "
                f"| {'; '.join(str(x['pushes_per_group']) for x in r['runs'])} "
                f"| {r['daphne_cpu_percent']} | {r['swarm_cpu_percent_total']} |"
            )
        lines.append(
            f"Ratio of the medians of the runs' p99 (each board / one board): "
            f"{b['p99_ratio']}; of the pooled p99: {b['pooled_p99_ratio']}; each round: "
            f"{b['p99_ratio_of_each_round']}."
        )
    if "idle" in result:
        idle = result["idle"]
        lines.append("")
        lines.append(
            f"Idle sockets: one daphne process held {idle['daphne']['held']} of "
            f"{idle['daphne']['asked']} ({idle['daphne']['rss_per_socket_kib']} KiB each); "
            f"the raw server {idle['raw']['held']} ({idle['raw']['rss_per_socket_kib']} KiB "
            f"each); ratio {idle['rss_per_socket_vs_raw']}."
        )
    return "\n".join(lines)
