"""The ranking index at scale: bytes per ranked user, rebuild time, rank lookup latency.

Runs in a process of its own, without the stack: a Redis server of its own on a spare
port (no persistence, compiled-in defaults, stopped at the end) and a PostgreSQL
database of its own (`scoreboard_bench_index`, recreated). For each size it fills the
users table (one ledger entry each, many tied scores), then measures on an empty Redis:

- a plain sorted set of the same users (member: the 16-byte user id; and the 36-character
  text id), as the baseline for memory (`used_memory` delta per member);
- `leaderboard_rebuild()` (wall time) and the index's `used_memory` delta per ranked user;
- rank lookups (`leaderboard_rank_and_score`, one Lua call) and a top-10 page, against a
  PING round trip on the same connection.

    python -m bench.index                          # 10,000 and 1,000,000 users
    python -m bench.index --sizes 10000,100000 --json bench/results/index.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.databases import recreate_database

DEFAULT_SIZES = "10000,1000000"
LOOKUPS = 2000


def _start_redis(port: int) -> subprocess.Popen[bytes]:
    server = shutil.which("redis-server")
    if server is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    for _ in range(100):
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.terminate()
    sys.exit(f"redis-server did not start on port {port}")


def _setup_django(database_url: str, redis_url: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SCOREBOARD_READ_DOT_ENV": "0",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "REDIS_KEY_PREFIX": "benchindex",
            "SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@contextlib.contextmanager
def unbounded_statements() -> Iterator[None]:
    """Neither the server's statement timeout nor the client's bound on a wait
    (core.dbwait), both a few seconds: the bench's own bulk statements on a million rows
    take longer than any request may."""
    from django.db import connection

    from core.dbwait import wait_budget

    with wait_budget(3600):
        with connection.cursor() as cursor:
            cursor.execute("SET statement_timeout = 0")
        try:
            yield
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET statement_timeout")


def _fill(users: int) -> None:
    """`users` ranked users with one ledger entry each; scores collide a lot (ties)."""
    from django.db import connection

    from accounts.models import User
    from scoreboard.models import ScoreEntry

    user_table, entry_table = User._meta.db_table, ScoreEntry._meta.db_table
    with unbounded_statements(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {entry_table}, {user_table} CASCADE")
        # Table names come from the models, the size is a parameter: nothing user-supplied.
        cursor.execute(
            f"""
            INSERT INTO {user_table} (id, password, is_superuser, username, username_key,
                first_name, last_name, email, is_staff, is_active, date_joined, score,
                score_reached_at, is_banned)
            SELECT gen_random_uuid(), '!', false, 'player' || g, 'player' || g, '', '',
                'player' || g || '@example.com', false, true, now(), 1 + (g::bigint * 7919) %% 5000,
                now() - (g %% 100000) * interval '1 second', false
            FROM generate_series(1, %s) AS g
            """,  # noqa: S608 (table names from the models)
            [users],
        )
        cursor.execute(
            f"""
            INSERT INTO {entry_table} (user_id, delta, score_before, score_after, reason,
                action_id, token_hash, user_agent, note, created_at)
            SELECT id, score, 0, score, 'completion', 'bench', '', '', '', score_reached_at
            FROM {user_table}
            """  # noqa: S608 (table names from the models)
        )
        cursor.execute(f"ANALYZE {user_table}")
        cursor.execute(f"ANALYZE {entry_table}")


def _used_memory(client: Any) -> int:
    return int(client.info("memory")["used_memory"])


def _plain_zset_bytes(client: Any, *, binary: bool) -> float:
    """used_memory delta per member of a plain sorted set of the same users and scores."""
    from accounts.models import User

    client.flushall()
    before = _used_memory(client)
    pipe = client.pipeline(transaction=False)
    members: dict[bytes | str, int] = {}
    count = 0
    rows = User.objects.rankable().order_by().values_list("id", "score").iterator(10_000)
    for user_id, score in rows:
        members[user_id.bytes if binary else str(user_id)] = score
        if len(members) >= 10_000:
            pipe.zadd("plain", members)
            pipe.execute()
            count += len(members)
            members = {}
    if members:
        pipe.zadd("plain", members)
        pipe.execute()
        count += len(members)
    per_member = (_used_memory(client) - before) / max(count, 1)
    client.flushall()
    return per_member


def _timings(call: Callable[[], Any], times: int) -> dict[str, float]:
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        call()
        samples.append((time.perf_counter() - started) * 1e6)
    samples.sort()
    return {
        "p50_us": round(statistics.median(samples), 1),
        "p99_us": round(samples[int(len(samples) * 0.99) - 1], 1),
    }


def _same_order(users: int) -> bool:
    """The index's pages equal `User.objects.ranked()` at the top, middle and end."""
    from accounts.models import User
    from leaderboard import selectors

    for offset in (0, users // 2, max(0, users - 100)):
        page = selectors.leaderboard_page(offset=offset, limit=100)["entries"]
        rows = User.objects.ranked().values_list("id", "score")[offset : offset + 100]
        if [(e["userId"], e["score"]) for e in page] != [(str(u), s) for u, s in rows]:
            return False
    return True


def measure(users: int, client: Any) -> dict[str, Any]:
    from accounts.models import User
    from leaderboard import rebuild, selectors

    started = time.monotonic()
    _fill(users)
    filled = time.monotonic() - started
    plain_binary = _plain_zset_bytes(client, binary=True)
    plain_text = _plain_zset_bytes(client, binary=False)

    client.flushall()
    before = _used_memory(client)
    started = time.monotonic()
    ranked = rebuild.leaderboard_rebuild()
    rebuild_seconds = time.monotonic() - started
    per_user = (_used_memory(client) - before) / max(ranked, 1)

    ids = list(User.objects.rankable().order_by("?").values_list("id", flat=True)[:LOOKUPS])
    random.shuffle(ids)
    lookups = iter(ids * 2)
    rank = _timings(lambda: selectors.leaderboard_rank_and_score(user_id=next(lookups)), len(ids))
    top = _timings(lambda: selectors.leaderboard_page(offset=0, limit=10), LOOKUPS)
    ping = _timings(client.ping, LOOKUPS)
    return {
        "order_matches_postgres": _same_order(users),
        "users": users,
        "ranked": ranked,
        "fill_seconds": round(filled, 1),
        "rebuild_seconds": round(rebuild_seconds, 2),
        "bytes_per_ranked_user": round(per_user, 1),
        "plain_zset_bytes_per_member_uuid16": round(plain_binary, 1),
        "plain_zset_bytes_per_member_uuid36": round(plain_text, 1),
        "ratio_to_plain_uuid16": round(per_user / plain_binary, 2),
        "rank_lookup": rank,
        "top10_page": top,
        "ping_round_trip": ping,
        "rank_lookup_p50_over_ping": round(rank["p50_us"] / ping["p50_us"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated user counts")
    parser.add_argument("--redis-port", type=int, default=6390, help="port of our own Redis")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]

    database_url = os.environ.get(
        "BENCH_INDEX_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/scoreboard_bench_index"
    )
    recreate_database(database_url)
    redis_process = _start_redis(args.redis_port)
    results = []
    try:
        import redis

        _setup_django(database_url, f"redis://127.0.0.1:{args.redis_port}/0")
        client = redis.Redis(port=args.redis_port)
        for size in sizes:
            print(f"== index, {size} users", flush=True)
            results.append(measure(size, client))
            print(json.dumps(results[-1], indent=2), flush=True)
        from django.db import connections

        connections.close_all()
    finally:
        redis_process.terminate()
        redis_process.wait(timeout=10)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
