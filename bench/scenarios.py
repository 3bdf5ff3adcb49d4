"""The benchmark scenarios: REST reads (wrk) and completions (bench.writer, pgbench).

Fan-out is in bench/fanout.py, the ranking index in bench/index.py.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from bench import pgbench, writer, wrk
from deploy.stack import Stack

# The stack under benchmark: limits high enough that the benchmark measures the work,
# not the rate limiter (which has its own tests). The defaults (10 completions a minute
# per user, 300 per IP) would turn all but the first few seconds into 429s: every
# simulated player comes from 127.0.0.1.
STACK_ENV = {
    "COMPLETION_RATE_PER_USER": "100000/m",
    "COMPLETION_RATE_PER_IP": "1000000/m",
    "LOG_LEVEL": "WARNING",
    # Every simulated player connects from 127.0.0.1, which the farm rule would (rightly)
    # flag; real players come from addresses of their own. The other rules stay on.
    "FRAUD_RULE_WEIGHTS": "ip_farm=0",
}
BENCH_ACTION = "bench-click"
HOT_USER = "benchhot"


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
    hot_user_id: str = ""
    hot_token: str = ""

    @classmethod
    def create(cls, stack: Stack, *, users: int) -> World:
        from django.contrib.auth.hashers import make_password
        from django.db import transaction

        from accounts.models import User
        from accounts.tokens import access_token_for
        from actions.models import ActionType
        from scoreboard.models import ScoreEntry
        from scoreboard.services import ledger_award

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
        User.objects.get_or_create(
            username=HOT_USER, defaults={"email": "benchhot@example.com", "password": password}
        )
        world = cls(stack=stack)
        players = list(User.objects.filter(username__regex=r"^bench[0-9]+$").order_by("username"))
        with transaction.atomic():  # one transaction: quick to set up on loaded cores
            for n, user in enumerate(players):
                if user.score == 0:  # a board of ranked players, scores spread out
                    ledger_award(
                        user_id=user.pk,
                        delta=1 + (n * 7919) % 10_000,
                        reason=ScoreEntry.Reason.ADJUSTMENT,
                        note="bench",
                    )
        for user in players:
            world.user_ids.append(str(user.pk))
            # An access token with a login's claims (no session row): all reads and
            # writes need.
            world.tokens.append(access_token_for(user))
        hot = User.objects.get(username=HOT_USER)
        world.hot_user_id = str(hot.pk)
        world.hot_token = access_token_for(hot)
        return world

    @property
    def host_port(self) -> tuple[str, int]:
        parsed = urlparse(self.stack.url)
        return parsed.hostname or "127.0.0.1", parsed.port or 80


# -- reads ------------------------------------------------------------------------------

# Each read figure must reach this share of /healthz's requests/s, with this p99.
READ_TARGET = {"ratio": 0.70, "aim": 0.85, "p99_ms": 50.0}


def _reads(world: World) -> dict[str, tuple[list[str], list[str] | None]]:
    """name -> (paths rotated over, Authorization headers rotated over)."""
    bearer = [f"Bearer {t}" for t in world.tokens]
    return {
        "leaderboard top 10": (["/api/v1/leaderboard/?limit=10"], None),
        "leaderboard user rank": (
            [f"/api/v1/leaderboard/users/{user_id}/" for user_id in world.user_ids],
            None,
        ),
        "leaderboard around me": (["/api/v1/leaderboard/me/"], bearer),
        "me": (["/api/v1/me/"], bearer),
    }


async def read(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """Reads with wrk, each segment preceded by a /healthz segment through the same stack.

    `--read-rounds` rounds of (healthz, board, healthz, user, healthz, around me,
    healthz, me), each segment `--seconds / --read-rounds` long, so the machine's noise
    hits the baseline and the reads alike.
    """
    reads = _reads(world)
    rounds = max(1, args.read_rounds)
    segment = max(1, round(args.seconds / rounds))
    baseline = wrk.Merged("healthz (baseline)")
    merged = {name: wrk.Merged(name) for name in reads}
    pairs: dict[str, list[float]] = {name: [] for name in reads}
    # Warm-up, not counted: a gunicorn worker's first requests of a view import code and
    # open connections. One wrk run over every read path (tokens on all of them).
    wrk.run(
        world.stack.url,
        ["/healthz", *[paths[0] for paths, _ in reads.values()]],
        name="warm-up",
        seconds=2,
        connections=args.concurrency,
        authorizations=[f"Bearer {t}" for t in world.tokens],
    )
    for _ in range(rounds):
        for name, (paths, auths) in reads.items():
            base = wrk.run(
                world.stack.url,
                ["/healthz"],
                name="healthz",
                seconds=segment,
                connections=args.concurrency,
            )
            baseline.segments.append(base)
            seg = wrk.run(
                world.stack.url,
                paths,
                name=name,
                seconds=segment,
                connections=args.concurrency,
                authorizations=auths,
            )
            merged[name].segments.append(seg)
            if base.requests:
                pairs[name].append(
                    round(seg.requests / seg.duration / (base.requests / base.duration), 3)
                )
    base_summary = baseline.summary()
    out: dict[str, Any] = {
        "connections": args.concurrency,
        "segment_seconds": segment,
        "rounds": rounds,
        "target": READ_TARGET,
        "healthz (baseline)": base_summary,
    }
    for name, result in merged.items():
        summary = result.summary()
        ratio = round(result.rps / baseline.rps, 3) if baseline.rps else None
        summary["rps_vs_healthz"] = ratio
        summary["rps_vs_adjacent_healthz"] = pairs[name]
        summary["met"] = bool(
            ratio is not None
            and ratio >= READ_TARGET["ratio"]
            and summary["p99_ms"] is not None
            and summary["p99_ms"] <= READ_TARGET["p99_ms"]
            and summary["non_2xx"] == 0
        )
        out[name] = summary
    return out


# -- writes -----------------------------------------------------------------------------

WRITE_TARGET = {"ratio": 0.10, "aim": 0.35, "complete_p99_ms": 100.0}
# 403 is fraud_blocked: sixteen clients hammering one account is what the fraud rules
# exist to stop (bench/README.md); any other status, or a connection error, is a failure.
HOT_ALLOWED = {"200", "403", "409", "429"}


def _hot_user_check(user_id: str, accepted: int, score_before: int) -> dict[str, Any]:
    from django.db.models import Sum

    from accounts.models import User
    from actions.models import ActionType
    from scoreboard.models import ScoreEntry

    reward = ActionType.objects.get(pk=BENCH_ACTION).reward
    score = User.objects.get(pk=user_id).score
    ledger = ScoreEntry.objects.filter(user_id=user_id).aggregate(s=Sum("delta"))["s"] or 0
    return {
        "reward": reward,
        "score_before": score_before,
        "score_after": score,
        "ledger_sum": ledger,
        "score_equals_accepted_times_reward": score - score_before == accepted * reward,
        "score_equals_ledger_sum": score == ledger,
    }


def _score(user_id: str) -> int:
    from accounts.models import User

    return User.objects.get(pk=user_id).score


async def write(world: World, args: argparse.Namespace) -> dict[str, Any]:
    """Completions against pgbench running the completion's transaction, same run.

    `--write-rounds` rounds of (pgbench spread, completions over many users), then as
    many of (pgbench hot row, completions of one hot user), each `--seconds / rounds`
    long; then /healthz pairs through the same client.
    """
    import asyncio

    host, port = world.host_port
    n = args.concurrency
    rounds = max(1, args.write_rounds)
    seconds = max(1.0, round(args.seconds / rounds))

    def segment(clients: list[list[str]], mode: str = "complete", length: float = seconds) -> list:
        return writer.run_segment(
            host=host,
            port=port,
            action=BENCH_ACTION,
            clients=clients,
            seconds=length,
            processes=args.writer_processes,
            mode=mode,
        )

    def base(scratch: str, users: int) -> dict[str, Any]:
        return pgbench.run_segment(
            scratch, users=users, clients=n, seconds=seconds, action=BENCH_ACTION
        )

    shapes = await asyncio.to_thread(pgbench.completion_statements, world.user_ids[0], BENCH_ACTION)
    scratch, users = await asyncio.to_thread(pgbench.prepare, world.stack.database_url)
    # Each client cycles over users of its own.
    spread_clients = [world.tokens[c::n] for c in range(n)]
    hot_clients = [[world.hot_token] for _ in range(n)]
    segment(spread_clients, length=1.0)  # warm-up, not counted
    spread_segments, many_segments = [], []
    for _ in range(rounds):
        spread_segments.append(base(scratch, users))
        many_segments.append(segment(spread_clients))
    before = await asyncio.to_thread(_score, world.hot_user_id)
    hot_base_segments, hot_segments = [], []
    for _ in range(rounds):
        hot_base_segments.append(base(scratch, 1))
        hot_segments.append(segment(hot_clients))
    healthz = writer.summarize(
        [segment([[t] for t in world.tokens[:n]], mode="healthz")], clients=n, mode="healthz"
    )
    spread_base = pgbench.summarize(spread_segments)
    hot_base = pgbench.summarize(hot_base_segments)
    many = writer.summarize(many_segments, clients=n, mode="complete")
    hot = writer.summarize(hot_segments, clients=n, mode="complete")

    hot["check"] = await asyncio.to_thread(
        _hot_user_check, world.hot_user_id, hot["accepted"], before
    )
    hot["only_allowed_statuses"] = set(hot["complete_statuses"]) <= HOT_ALLOWED and set(
        hot["start_statuses"]
    ) <= {"201", "429"}
    hot["met"] = bool(
        hot["only_allowed_statuses"]
        and hot["io_errors"] == 0
        and hot["iterations"] > 0
        and hot["check"]["score_equals_accepted_times_reward"]
        and hot["check"]["score_equals_ledger_sum"]
    )

    def ratio(value: float, base: float | None) -> float | None:
        return round(value / base, 3) if base else None

    many["vs_pgbench_spread"] = ratio(many["accepted_per_s"], spread_base["tps"])
    many["vs_pgbench_hot"] = ratio(many["accepted_per_s"], hot_base["tps"])
    many["iterations_vs_healthz_pairs"] = ratio(
        many["iterations_per_s"], healthz["iterations_per_s"]
    )
    many["met"] = bool(
        many["vs_pgbench_spread"] is not None
        and many["vs_pgbench_spread"] >= WRITE_TARGET["ratio"]
        and many["complete_p99_ms"] is not None
        and many["complete_p99_ms"] <= WRITE_TARGET["complete_p99_ms"]
        and set(many["complete_statuses"]) == {"200"}
    )
    hot["vs_pgbench_hot"] = ratio(hot["accepted_per_s"], hot_base["tps"])
    return {
        "target": WRITE_TARGET,
        "rounds": rounds,
        "segment_seconds": seconds,
        "completion_transaction": [" ".join(s) for s in shapes],
        "pgbench_mirrors_it": shapes == pgbench.SHAPE,
        "pgbench spread (baseline)": spread_base,
        "pgbench hot row (baseline)": hot_base,
        "completions, many users": many,
        "completions, one hot user": hot,
        "healthz pairs (same client)": healthz,
    }
