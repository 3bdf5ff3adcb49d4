"""The benchmark scenarios: REST reads, completions, and WebSocket fan-out."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx
import websockets

from bench.load import LoadResult, closed_loop
from deploy.stack import Stack

# The stack under benchmark: limits high enough that the benchmark measures the work,
# not the rate limiter (which has its own tests).
STACK_ENV = {
    "COMPLETION_RATE_PER_USER": "100000/m",
    "COMPLETION_RATE_PER_IP": "1000000/m",
    "LOG_LEVEL": "WARNING",
    # Every simulated player connects from 127.0.0.1, which the farm rule would (rightly)
    # flag; real players come from addresses of their own. The other rules stay on.
    "FRAUD_RULE_WEIGHTS": "ip_farm=0",
}
BENCH_ACTION = "bench-click"


def recreate_database(database_url: str) -> None:
    import psycopg

    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # our own bench DB
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_redis_prefix(redis_url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])


def setup_django(stack: Stack) -> None:
    """Configure Django in this process exactly like the stack's servers."""
    os.environ.update(stack.env())
    os.environ["SCOREBOARD_READ_DOT_ENV"] = "0"
    import django

    django.setup()


@dataclass
class World:
    stack: Stack
    user_ids: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, stack: Stack, *, users: int) -> World:
        from django.contrib.auth.hashers import make_password
        from rest_framework_simplejwt.tokens import RefreshToken

        from accounts.models import User
        from actions.models import ActionType

        ActionType.objects.update_or_create(
            id=BENCH_ACTION,
            defaults={
                "name": "Benchmark click",
                "reward": 1,
                "cooldown_seconds": 0,
                "min_duration_seconds": 0,
                "daily_cap": None,
                "active": True,
            },
        )
        password = make_password(None)
        User.objects.bulk_create(
            [
                User(username=f"bench{i:05d}", email=f"bench{i:05d}@example.com", password=password)
                for i in range(users)
            ],
            ignore_conflicts=True,
        )
        world = cls(stack=stack)
        for user in User.objects.filter(username__startswith="bench").order_by("username"):
            world.user_ids.append(str(user.pk))
            world.tokens.append(str(RefreshToken.for_user(user).access_token))
        return world

    def auth(self, index: int) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[index % len(self.tokens)]}"}


def _ratio(result: LoadResult, baseline: LoadResult) -> dict[str, Any]:
    summary = result.summary()
    summary["rps_vs_baseline"] = round(result.rps / baseline.rps, 3) if baseline.rps else None
    base_p50 = baseline.percentile(0.5)
    summary["p50_vs_baseline"] = round(result.percentile(0.5) / base_p50, 2) if base_p50 else None
    return summary


def _client(world: World, concurrency: int) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    return httpx.AsyncClient(base_url=world.stack.url, limits=limits, timeout=30)


async def read(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """Reads: the board, one user's rank and /me, against /healthz through the same path."""
    async with _client(world, args.concurrency) as client:

        async def get(path: str, headers: dict[str, str] | None = None) -> int:
            return (await client.get(path, headers=headers)).status_code

        runs = {
            "healthz (baseline)": lambda w, i: get("/healthz"),
            "leaderboard top 10": lambda w, i: get("/api/v1/leaderboard/?limit=10"),
            "leaderboard user rank": lambda w, i: get(
                f"/api/v1/leaderboard/users/{world.user_ids[(w * 7919 + i) % len(world.user_ids)]}/"
            ),
            "me": lambda w, i: get("/api/v1/me/", world.auth(w + i)),
        }
        results = {}
        for name, call in runs.items():
            results[name] = await closed_loop(
                name, call, concurrency=args.concurrency, seconds=args.seconds
            )
    baseline = results["healthz (baseline)"]
    return {name: _ratio(result, baseline) for name, result in results.items()}


async def _complete_once(client: httpx.AsyncClient, world: World, index: int) -> tuple[int, dict]:
    headers = world.auth(index)
    started = await client.post(f"/api/v1/actions/{BENCH_ACTION}/start/", headers=headers)
    if started.status_code != 201:
        return started.status_code, {}
    done = await client.post(
        "/api/v1/actions/complete/",
        headers=headers,
        json={"actionId": BENCH_ACTION, "actionToken": started.json()["actionToken"]},
    )
    return done.status_code, (done.json() if done.status_code == 200 else {})


async def write(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """Completions (start + complete, two requests each) against /healthz pairs."""
    async with _client(world, args.concurrency) as client:

        async def healthz_pair(w: int, i: int) -> int:
            await client.get("/healthz")
            return (await client.get("/healthz")).status_code

        async def completion(w: int, i: int) -> int:
            status, _ = await _complete_once(client, world, w + i * args.concurrency)
            return status

        baseline = await closed_loop(
            "healthz pair (baseline)",
            healthz_pair,
            concurrency=args.concurrency,
            seconds=args.seconds,
        )
        result = await closed_loop(
            "start + complete", completion, concurrency=args.concurrency, seconds=args.seconds
        )
    return {baseline.name: _ratio(baseline, baseline), result.name: _ratio(result, baseline)}


async def fanout(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """Live updates to many viewers while completions stream in.

    Reports pushes per viewer per second (coalescing bounds it by the interval), and the
    delay from sending a completion to a viewer seeing its score, against the ping/pong
    round trip on the same socket path measured in the same run.
    """
    url = world.stack.url.replace("http://", "ws://") + "/ws/leaderboard/"
    origin = world.stack.url
    sockets = []
    for batch in range(0, args.viewers, 50):
        sockets += await asyncio.gather(
            *(
                websockets.connect(url, origin=origin, max_queue=None, open_timeout=30)
                for _ in range(min(50, args.viewers - batch))
            )
        )
    for ws in sockets:  # the snapshot every viewer gets on connect
        await asyncio.wait_for(ws.recv(), timeout=30)

    rtts = []
    for _ in range(12):  # paced: the server closes sockets that flood it
        await asyncio.sleep(0.3)
        start = time.perf_counter()
        await sockets[0].send(json.dumps({"type": "ping"}))
        while json.loads(await asyncio.wait_for(sockets[0].recv(), timeout=10))["type"] != "pong":
            pass
        rtts.append(time.perf_counter() - start)
    rtts.sort()

    seen: dict[tuple[str, int], float] = {}  # (userId, score) -> first time a viewer saw it
    pushes = [0] * len(sockets)
    stop = asyncio.Event()

    async def watch(index: int, ws: Any) -> None:
        while not stop.is_set():
            try:
                frame = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.5))
            except TimeoutError:
                continue
            except websockets.ConnectionClosed:
                return
            if frame.get("type") != "leaderboard.update":
                continue
            pushes[index] += 1
            now = time.perf_counter()
            for entry in frame["entries"]:
                seen.setdefault((entry["userId"], entry["score"]), now)

    watchers = [asyncio.create_task(watch(i, ws)) for i, ws in enumerate(sockets)]
    sent: list[tuple[float, str, int]] = []
    async with _client(world, args.concurrency) as client:

        async def completion(w: int, i: int) -> int:
            index = w + i * args.concurrency
            started = time.perf_counter()
            status, body = await _complete_once(client, world, index)
            if status == 200:
                sent.append(
                    (started, world.user_ids[index % len(world.user_ids)], body["newScore"])
                )
            return status

        started = time.perf_counter()
        load = await closed_loop(
            "completions during fan-out",
            completion,
            concurrency=args.concurrency,
            seconds=args.seconds,
        )
        elapsed = time.perf_counter() - started
    await asyncio.sleep(1.0)  # let the last coalesced push arrive
    stop.set()
    await asyncio.gather(*watchers)
    for ws in sockets:
        await ws.close()

    delays = sorted(seen[(uid, score)] - t for t, uid, score in sent if (uid, score) in seen)
    rtt_p50 = rtts[len(rtts) // 2]

    def pct(values: list[float], q: float) -> float:
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    return {
        "viewers": len(sockets),
        "completions_per_s": round(load.rps, 1),
        "completion_errors": load.errors,
        "pushes_per_viewer_per_s": round(sum(pushes) / len(pushes) / elapsed, 2),
        "max_pushes_per_viewer_per_s": round(max(pushes) / elapsed, 2),
        "ping_rtt_p50_ms (baseline)": round(rtt_p50 * 1000, 2),
        "seen_delay_p50_ms": round(pct(delays, 0.5) * 1000, 1),
        "seen_delay_p99_ms": round(pct(delays, 0.99) * 1000, 1),
        "seen_delay_p50_vs_rtt": round(pct(delays, 0.5) / rtt_p50, 1) if delays else None,
        "completions_seen_in_top_n": len(delays),
    }
