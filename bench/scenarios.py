"""The benchmark scenarios: REST reads (wrk) and completions (bench.writer, pgbench).

Fan-out is in bench/fanout.py, the ranking index in bench/index.py.
"""

from __future__ import annotations

import argparse
import os
import time
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
}
# Every fraud rule runs with its default weight: each simulated player connects from a
# loopback address of their own (`player_address`), as real players come from networks
# of their own, and the farm (`FARM`) from one address, as a farm does.
BENCH_ACTION = "bench-click"
HOT_USER = "benchhot"
FARM = "benchfarm"
BOARDS = {"daily": "day", "weekly": "week", "monthly": "month"}
FARM_ADDRESS = "127.2.0.1"


def player_address(n: int) -> str:
    """The loopback address player `n` connects from (127.1.0.1, 127.1.0.2, ...): one a
    player, so the farm rule sees one account an address."""
    return f"127.1.{n // 250}.{n % 250 + 1}"


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
    # token -> the loopback address its player connects from (bench.writer)
    addresses: dict[str, str] = field(default_factory=dict)
    hot_user_id: str = ""
    hot_token: str = ""
    # New accounts completing from one address (FARM_ADDRESS): what the fraud rules flag.
    farm_user_ids: list[str] = field(default_factory=list)
    farm_tokens: list[str] = field(default_factory=list)

    @classmethod
    def create(cls, stack: Stack, *, users: int) -> World:
        from datetime import timedelta

        from django.contrib.auth.hashers import make_password
        from django.db import transaction
        from django.utils import timezone

        from accounts.models import User
        from accounts.tokens import access_token_for
        from actions.models import ActionType
        from leaderboard.boards import board_save
        from scoreboard.models import ScoreEntry
        from scoreboard.services import ledger_award

        # Boards in place: every completion credits `global` and a daily, a weekly and a
        # monthly board (each counting every action type).
        for slug, period in BOARDS.items():
            board_save(slug=slug, title=f"Bench {period}", period=period, is_active=True)
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
        # Players of a month's standing (the new-account rule is for new ones); the farm's
        # accounts are new.
        joined = timezone.now() - timedelta(days=30)
        User.objects.bulk_create(
            [
                User(
                    username=f"bench{i:05d}",
                    email=f"bench{i:05d}@example.com",
                    password=password,
                    date_joined=joined,
                )
                for i in range(users)
            ]
            + [
                User(
                    username=f"{FARM}{i:05d}", email=f"{FARM}{i:05d}@example.com", password=password
                )
                for i in range(users)
            ],
            ignore_conflicts=True,
        )
        User.objects.get_or_create(
            username=HOT_USER,
            defaults={"email": "benchhot@example.com", "password": password, "date_joined": joined},
        )
        User.objects.filter(username__regex=r"^bench([0-9]+|hot)$").update(date_joined=joined)
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
        for n, user in enumerate(players):
            world.user_ids.append(str(user.pk))
            # An access token with a login's claims (no session row): all reads and
            # writes need.
            world.tokens.append(access_token_for(user))
            world.addresses[world.tokens[-1]] = player_address(n)
        for user in User.objects.filter(username__startswith=FARM).order_by("username"):
            world.farm_user_ids.append(str(user.pk))
            world.farm_tokens.append(access_token_for(user))
            world.addresses[world.farm_tokens[-1]] = FARM_ADDRESS
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
# The figures with bars of their own (SPEC.md, "Leaderboard": an anonymous read may come
# from nginx's one-second cache; a read with credentials is always fresh).
READ_TARGETS = {
    "leaderboard top 10": {"ratio": 1.0, "aim": 1.0, "p99_ms": 50.0},
    "leaderboard top 10, If-None-Match (304)": {"ratio": 1.0, "aim": 1.0, "p99_ms": 50.0},
    "board entries (daily)": {"ratio": 1.0, "aim": 1.0, "p99_ms": 50.0},
    "leaderboard top 10, authenticated": {"ratio": 0.60, "aim": 0.80, "p99_ms": 50.0},
}
# A reference row, with no target: a DRF view that answers 404 before any I/O (an id
# that is not a UUID), through every middleware, DRF's dispatch, the error envelope and
# the JSON renderer. No view of the API can cost less, so its ratio to /healthz is the
# ceiling of every fresh read's ratio.
FLOOR = "API floor: a DRF 404 before any I/O"
FLOOR_PATH = "/api/v1/leaderboard/users/not-a-user-id/"
TOP_10 = "/api/v1/leaderboard/?limit=10"
BOARD_ENTRIES = "/api/v1/boards/daily/entries/?limit=10"


@dataclass(frozen=True)
class Read:
    paths: list[str]
    values: list[str] | None = None  # the header's values, rotated over
    header: str = "Authorization"


def _etag(world: World, path: str) -> str:
    """The ETag an anonymous read of `path` answers now (no writes run during reads)."""
    import urllib.request

    with urllib.request.urlopen(world.stack.url + path, timeout=10) as response:  # noqa: S310 - loopback
        # None before the board reads had one: the row then measures plain 200s (not met)
        return str(response.headers.get("ETag") or '"none"')


def _reads(world: World) -> dict[str, Read]:
    bearer = [f"Bearer {t}" for t in world.tokens]
    return {
        "leaderboard top 10": Read([TOP_10]),
        "leaderboard top 10, If-None-Match (304)": Read(
            [TOP_10], [_etag(world, TOP_10)], "If-None-Match"
        ),
        "board entries (daily)": Read([BOARD_ENTRIES]),
        "leaderboard top 10, authenticated": Read([TOP_10], bearer),
        "leaderboard user rank": Read(
            [f"/api/v1/leaderboard/users/{user_id}/" for user_id in world.user_ids]
        ),
        "leaderboard around me": Read(["/api/v1/leaderboard/me/"], bearer),
        "me": Read(["/api/v1/me/"], bearer),
        FLOOR: Read([FLOOR_PATH]),
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
        ["/healthz", *[r.paths[0] for r in reads.values()]],
        name="warm-up",
        seconds=2,
        connections=args.concurrency,
        authorizations=[f"Bearer {t}" for t in world.tokens],
    )
    for _ in range(rounds):
        for name, spec in reads.items():
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
                spec.paths,
                name=name,
                seconds=segment,
                connections=args.concurrency,
                authorizations=spec.values,
                header=spec.header,
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
        if name == FLOOR:
            summary["statuses_note"] = "404 expected"
            summary["reference"] = True
            summary["met"] = None
            out[name] = summary
            continue
        target = READ_TARGETS.get(name, READ_TARGET)
        summary["target"] = target
        floor = merged[FLOOR].rps
        summary["rps_vs_floor"] = round(result.rps / floor, 3) if floor else None
        # A 304 is the answer an If-None-Match read wants (every one of them); any other
        # non-2xx fails.
        wrong = summary["non_2xx"]
        if "304" in name:
            not_modified = summary["statuses"].get("304", 0)
            wrong = summary["requests"] - not_modified
        summary["statuses_note"] = "304 expected" if "304" in name else ""
        summary["met"] = bool(
            ratio is not None
            and ratio >= target["ratio"]
            and summary["p99_ms"] is not None
            and summary["p99_ms"] <= target["p99_ms"]
            and wrong == 0
        )
        out[name] = summary
    return out


# -- writes -----------------------------------------------------------------------------

WRITE_TARGET = {"ratio": 0.10, "aim": 0.25, "complete_p99_ms": 100.0}
# A flagged completion (what a farm sends) may cost at most 1.5x an unflagged one.
FARM_TARGET = {"ratio": 0.67, "aim": 0.9}
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


def _decisions(user_ids: list[str], windows: list[tuple[float, float]]) -> dict[str, int]:
    """What the fraud rules decided about these users' completions in the windows: the
    completions stored, those flagged, and the blocked (refused) ones."""
    from datetime import UTC, datetime

    from django.db.models import Q

    from actions.models import Completion
    from fraud.models import FraudLog

    def during(field: str) -> Q:
        q = Q()
        for began, ended in windows:
            span = (datetime.fromtimestamp(began, UTC), datetime.fromtimestamp(ended, UTC))
            q |= Q(**{f"{field}__range": span})
        return q

    stored = Completion.objects.filter(during("created_at"), user_id__in=user_ids)
    blocked = FraudLog.objects.filter(
        during("created_at"), user_id__in=user_ids, event=FraudLog.Event.BLOCKED
    )
    return {
        "completions": stored.count(),
        "flagged": stored.filter(flagged=True).count(),
        "blocked": blocked.count(),
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
            addresses=world.addresses,
        )

    def base(scratch: str, users: int) -> dict[str, Any]:
        return pgbench.run_segment(
            scratch, users=users, clients=n, seconds=seconds, action=BENCH_ACTION, periods=periods
        )

    shapes, periods = await asyncio.to_thread(
        pgbench.completion_statements, world.user_ids[0], BENCH_ACTION
    )
    scratch, users = await asyncio.to_thread(pgbench.prepare, world.stack.database_url)
    # Each client cycles over users of its own.
    spread_clients = [world.tokens[c::n] for c in range(n)]
    hot_clients = [[world.hot_token] for _ in range(n)]
    farm_clients = [world.farm_tokens[c::n] for c in range(n)]
    segment(spread_clients, length=1.0)  # warm-up, not counted
    spread_segments, many_segments, farm_segments = [], [], []
    many_windows, farm_windows = [], []
    many_cpu: dict[str, float] = {}
    farm_cpu: dict[str, float] = {}

    async def metered(
        clients: list[list[str]], windows: list[tuple[float, float]], cpu: dict[str, float]
    ) -> list:
        """A segment, with the CPU the servers spent on it (and in the second after it, on
        the work it queued: reviews, the audit batch) added to `cpu`."""
        from bench.board_cost import BackendMeter, _cpu, _groups

        groups = _groups(world)
        backends = BackendMeter(urlparse(world.stack.database_url).path.lstrip("/"))
        before = _cpu(groups)
        began = time.time()
        outs = segment(clients)
        windows.append((began, time.time()))
        await asyncio.sleep(1.0)
        after = _cpu(groups)
        spent = {name: after[name] - before[name] for name in groups}
        spent["postgres"] = await asyncio.to_thread(backends.seconds)
        for name, seconds_spent in spent.items():
            cpu[name] = cpu.get(name, 0.0) + seconds_spent
        return outs

    for _ in range(rounds):
        spread_segments.append(base(scratch, users))
        many_segments.append(await metered(spread_clients, many_windows, many_cpu))
        farm_segments.append(await metered(farm_clients, farm_windows, farm_cpu))
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
    farm = writer.summarize(farm_segments, clients=n, mode="complete")
    hot = writer.summarize(hot_segments, clients=n, mode="complete")
    many["fraud"] = await asyncio.to_thread(_decisions, world.user_ids, many_windows)
    farm["fraud"] = await asyncio.to_thread(_decisions, world.farm_user_ids, farm_windows)
    for summary, cpu in ((many, many_cpu), (farm, farm_cpu)):
        # Server CPU (ms) per completion answered, by process group: where a flag costs.
        answered = max(1, summary["iterations"])
        summary["server_cpu_ms_per_completion"] = {
            name: round(seconds_spent / answered * 1000, 2) for name, seconds_spent in cpu.items()
        }

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
    # The farm's completions, every one assessed, flagged (accepted) or blocked (403),
    # against the unflagged players' accepted completions, segments alternating.
    farm["answered_per_s"] = round(
        (farm["accepted"] + farm["complete_statuses"].get("403", 0)) / farm["seconds"], 1
    )
    farm["vs_unflagged"] = ratio(farm["accepted_per_s"], many["accepted_per_s"])
    farm["answered_vs_unflagged"] = ratio(farm["answered_per_s"], many["accepted_per_s"])
    farm["met"] = bool(
        farm["vs_unflagged"] is not None
        and farm["vs_unflagged"] >= FARM_TARGET["ratio"]
        and farm["fraud"]["flagged"] >= 0.99 * farm["accepted"]
        and many["fraud"]["flagged"] == 0
        and set(farm["complete_statuses"]) <= {"200", "403"}
    )
    return {
        "target": WRITE_TARGET,
        "rounds": rounds,
        "segment_seconds": seconds,
        "completion_transaction": [" ".join(s) for s in shapes],
        "pgbench_mirrors_it": shapes == pgbench.SHAPE,
        "periods_credited": periods,
        "pgbench spread (baseline)": spread_base,
        "pgbench hot row (baseline)": hot_base,
        "completions, many users": many,
        "completions, a farm (flagged)": farm,
        "farm_target": FARM_TARGET,
        "completions, one hot user": hot,
        "healthz pairs (same client)": healthz,
    }
