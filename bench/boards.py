"""Boards at scale: Redis bytes per ranked user per held period, and closing a period
of a million participants while completions go on.

Runs in a process of its own, without the stack, like bench/index.py (whose Redis
server of its own, on a spare port, and user fill it reuses), against a database of its
own (`scoreboard_bench_boards`, recreated). For each size it fills the users (one ledger
entry each, many tied scores) and a season board whose period holds every one of them
(one credit and one running total each, written in bulk by SQL), then on an empty Redis:

- a plain sorted set of the same users (16-byte members), the memory baseline;
- `period_index_rebuild()` of the period: wall time and `used_memory` delta per ranked
  user (the contract: at most 200 bytes per ranked user per held period);
- `leaderboard_rebuild()` (the global index, the same layout) on top: its delta per user.

At the largest size it then closes that period (bench/board_close.py): `period_close`
timed, with completions on another board measured during and around it.

    python -m bench.boards                            # 100,000 and 1,000,000 users
    python -m bench.boards --sizes 10000 --json bench/results/boards.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from bench import board_close
from bench.databases import recreate_database
from bench.index import (
    _fill,
    _plain_zset_bytes,
    _setup_django,
    _start_redis,
    _used_memory,
    unbounded_statements,
)

DEFAULT_SIZES = "100000,1000000"
BYTES_LIMIT = 200.0


def _season_period(size: int) -> tuple[int, datetime]:
    """A season board that ended just now, and its period's id, holding every ledger
    entry of the fill: one credit and one running total per user."""
    from django.db import connection
    from django.utils import timezone

    from leaderboard.boards import board_save, period_row
    from leaderboard.models import PeriodCredit, PeriodScore
    from leaderboard.periods import span_at
    from scoreboard.models import ScoreEntry

    ends_at = timezone.now()
    board, _ = board_save(
        slug=f"season-{size}",
        title=f"Bench season of {size:,}",
        period="season",
        starts_at=ends_at - timedelta(days=3),
        ends_at=ends_at,
    )
    span = span_at(board.rule, ends_at - timedelta(seconds=1))
    assert span is not None
    period = period_row(board, span)
    credit, score, entry = (
        PeriodCredit._meta.db_table,
        PeriodScore._meta.db_table,
        ScoreEntry._meta.db_table,
    )
    with unbounded_statements(), connection.cursor() as cursor:
        # Table names come from the models, the period id is a parameter.
        cursor.execute(
            f"INSERT INTO {credit} (period_id, entry_id, user_id, delta, at) "  # noqa: S608
            f"SELECT %s, id, user_id, delta, created_at FROM {entry}",
            [period.pk],
        )
        cursor.execute(
            f"INSERT INTO {score} (period_id, user_id, score, reached_at, entry_id) "  # noqa: S608
            f"SELECT %s, user_id, delta, created_at, id FROM {entry}",
            [period.pk],
        )
        cursor.execute(f"ANALYZE {credit}")
        cursor.execute(f"ANALYZE {score}")
    return period.pk, ends_at


def measure(size: int, client: Any) -> tuple[dict[str, Any], int, datetime]:
    from django.db import OperationalError, connection

    from leaderboard.period_index import period_index_rebuild
    from leaderboard.rebuild import leaderboard_rebuild

    started = time.monotonic()
    _fill(size)
    period_id, ends_at = _season_period(size)
    filled = time.monotonic() - started
    plain = _plain_zset_bytes(client, binary=True)

    # As the product runs it (the settings' statement timeout and client bound); when
    # that fails, again without them, to measure the index all the same.
    bounded_error = None
    for bounded in (True, False):
        client.flushall()
        before = _used_memory(client)
        started = time.monotonic()
        try:
            if bounded:
                ranked = period_index_rebuild(period_id, wait_seconds=5)
            else:
                with unbounded_statements():
                    ranked = period_index_rebuild(period_id, wait_seconds=5)
        except OperationalError as exc:
            if not bounded:
                raise
            bounded_error = f"{str(exc).splitlines()[0]} (after {time.monotonic() - started:.1f} s)"
            connection.close()  # core.dbwait closed psycopg's; Django's must follow
            continue
        break
    rebuild_seconds = time.monotonic() - started
    per_user = (_used_memory(client) - before) / max(ranked, 1)

    before = _used_memory(client)
    started = time.monotonic()
    with unbounded_statements():  # measured in bench/index.py; here its memory only
        global_ranked = leaderboard_rebuild()
    global_seconds = time.monotonic() - started
    global_per_user = (_used_memory(client) - before) / max(global_ranked, 1)
    return (
        {
            "users": size,
            "ranked_in_period": ranked,
            "fill_seconds": round(filled, 1),
            "period_rebuild_seconds": round(rebuild_seconds, 2),
            # None: rebuilt within the settings' timeouts; else how that attempt failed.
            "period_rebuild_error_with_settings_timeouts": bounded_error,
            "bytes_per_ranked_user_per_period": round(per_user, 1),
            "global_index_bytes_per_ranked_user": round(global_per_user, 1),
            "global_rebuild_seconds": round(global_seconds, 2),
            "plain_zset_bytes_per_member_uuid16": round(plain, 1),
            "ratio_to_plain_uuid16": round(per_user / plain, 2),
            "ratio_to_global_index": round(per_user / global_per_user, 2),
            "target_bytes": BYTES_LIMIT,
            "met": ranked == size and per_user <= BYTES_LIMIT,
        },
        period_id,
        ends_at,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated user counts")
    parser.add_argument("--redis-port", type=int, default=6391, help="port of our own Redis")
    parser.add_argument(
        "--close-rate", type=float, default=20.0, help="completions/s during the close (20)"
    )
    parser.add_argument(
        "--close-quiet", type=float, default=10.0, help="seconds measured before and after"
    )
    parser.add_argument("--no-close", action="store_true", help="memory figures only")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]

    database_url = os.environ.get(
        "BENCH_BOARDS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/scoreboard_bench_boards"
    )
    recreate_database(database_url)
    redis_process = _start_redis(args.redis_port)
    results: dict[str, Any] = {"memory": []}
    try:
        import redis

        _setup_django(database_url, f"redis://127.0.0.1:{args.redis_port}/0")
        client = redis.Redis(port=args.redis_port)
        period_id, ends_at = 0, None
        for size in sizes:
            print(f"== boards, {size} users in one period", flush=True)
            figures, period_id, ends_at = measure(size, client)
            results["memory"].append(figures)
            print(json.dumps(figures, indent=2), flush=True)
        if sizes and not args.no_close and ends_at is not None:
            print(f"== boards, closing a period of {sizes[-1]} participants", flush=True)
            results["close"] = board_close.measure_close(
                period_id, ends_at=ends_at, rate=args.close_rate, quiet_seconds=args.close_quiet
            )
            print(json.dumps(results["close"], indent=2), flush=True)
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
