"""Benchmarks of Scoreboard on the real stack: `make bench` or `python -m bench`.

Starts the stack (gunicorn, daphne, nginx, Celery worker) on loopback ports against a
database of its own (`scoreboard_bench`, recreated each run) and the local Redis, then
runs the scenarios and prints every figure next to a baseline measured in the same run:
the machine is shared and noisy, so ratios are what compare across runs.

    python -m bench                       # every scenario
    python -m bench --only read,fanout    # some of them
    python -m bench --seconds 5 --viewers 200 --json bench/results/latest.json
    python -m bench --only index --index-sizes 10000,100000   # the ranking index alone
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import fanout, scenarios
from deploy.stack import DEFAULT_REDIS_URL, Stack

SCENARIOS = {
    "read": scenarios.read,
    "write": scenarios.write,
    "fanout": fanout.fanout,
}
# Scenarios that start what they need themselves, in a process of their own, before the
# stack (see bench/index.py).
STANDALONE = {"index": "bench.index"}


def run_standalone(module: str, args: argparse.Namespace) -> object:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [sys.executable, "-m", module, "--sizes", args.index_sizes, "--json", str(out)]
        subprocess.run(command, check=True)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default=",".join([*SCENARIOS, *STANDALONE]), help="comma-separated scenarios"
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measurement")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument(
        "--viewers",
        default="1000,5000,10000",
        help="comma-separated viewer counts for fanout (default 1000,5000,10000)",
    )
    parser.add_argument(
        "--rate", type=float, default=5.0, help="completions per second during fanout (5)"
    )
    parser.add_argument(
        "--swarm", type=int, default=2, help="viewer swarm processes for fanout (default 2)"
    )
    parser.add_argument(
        "--idle",
        type=int,
        default=0,
        help="also hold this many idle sockets on one daphne process and the raw server",
    )
    parser.add_argument("--users", type=int, default=200, help="players to create")
    parser.add_argument("--web", type=int, default=1, help="gunicorn instances (2 workers each)")
    parser.add_argument("--ws", type=int, default=2, help="daphne instances (default 2)")
    parser.add_argument(
        "--index-sizes", default="10000,1000000", help="ranked users for the index scenario"
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--no-fraud-rules",
        action="store_true",
        help="every fraud rule's weight 0 (the completion path without the rules)",
    )
    args = parser.parse_args(argv)

    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in SCENARIOS and name not in STANDALONE]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")

    results: dict[str, object] = {}
    for name in chosen:
        if name in STANDALONE:
            results[name] = run_standalone(STANDALONE[name], args)
    chosen = [name for name in chosen if name in SCENARIOS]
    if not chosen:
        return _write(args.json, results)

    database_url = os.environ.get(
        "BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/scoreboard_bench"
    )
    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    prefix = f"sbbench-{secrets.token_hex(4)}"
    env = {
        "REDIS_KEY_PREFIX": prefix,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        **scenarios.STACK_ENV,
    }
    if args.no_fraud_rules:
        from fraud.rules import RULES

        env["FRAUD_RULE_WEIGHTS"] = ",".join(f"{name}=0" for name in RULES)
    scenarios.recreate_database(database_url)
    stack = Stack(
        web=args.web,
        ws=args.ws,
        beat=False,
        bootstrap=True,
        database_url=database_url,
        redis_url=redis_url,
        extra_env=env,
    )
    with stack.running():
        scenarios.setup_django(stack)
        world = scenarios.World.create(stack, users=args.users)
        for name in chosen:
            print(f"== {name}", flush=True)
            results[name] = asyncio.run(SCENARIOS[name](world, args))
            print(json.dumps(results[name], indent=2), flush=True)
    scenarios.drop_redis_prefix(redis_url, prefix)
    return _write(args.json, results)


def _write(path: Path | None, results: dict[str, object]) -> int:
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
