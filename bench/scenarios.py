"""The benchmark scenarios: REST reads and completions (fan-out is in bench/fanout.py)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

import httpx

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
