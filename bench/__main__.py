"""Benchmarks of Scoreboard on the real stack: `make bench` or `python -m bench`.

Starts the stack (gunicorn, daphne, nginx, Celery worker) on loopback ports against a
database of its own (`scoreboard_bench`, recreated each run) and the local Redis, then
runs the scenarios and prints every figure next to a baseline measured in the same run:
the machine is shared and noisy, so ratios are what compare across runs. Each run writes
`bench/results/<UTC time>.json` and `.md` (the table of figures, baselines and targets).

    python -m bench                       # every scenario
    python -m bench --quick               # read, write, pgbench, fan-out at 1,000: < 2 min
    python -m bench --only read,fanout    # some of them
    python -m bench --only index --index-sizes 10000,100000   # the ranking index alone
    python -m bench --only boards         # boards: CPU, Redis bytes per period, closing
    python -m bench --only fanout --viewers 10000 --board-viewers ""   # no board sockets
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
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import deploy.stack
from bench import board_cost, databases, fanout, profile, report, scenarios
from deploy.stack import DEFAULT_REDIS_URL, Stack, free_port

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/scoreboard_bench"
# `--quick`: every scenario but the index, short, fan-out at 1,000 viewers only.
QUICK = {
    "only": "read,write,fanout",
    "seconds": 2.0,
    "read_rounds": 1,
    "write_rounds": 1,
    "viewers": "1000",
    "board_viewers": "",
}

SCENARIOS = {
    "read": scenarios.read,
    "write": scenarios.write,
    "boards": board_cost.boards,
    "fanout": fanout.fanout,
}
# Scenarios that start what they need themselves, in a process of their own, before the
# stack (see bench/index.py): (module, its database's suffix, its sizes' option). A name
# in both tables (`boards`) runs its standalone part first and its stack part with the
# stack; its results are merged.
STANDALONE = {
    "index": ("bench.index", "index", "index_sizes"),
    "boards": ("bench.boards", "boards", "board_sizes"),
}


# deploy.stack waits 30 s for each server's first /healthz. Every server imports Django
# (about 6 s of CPU each here) at once, so on two cores shared with other benchmarks the
# stack's first answers took longer than that: the bench waits longer, nothing else.
START_TIMEOUT = float(os.environ.get("BENCH_START_TIMEOUT", "240"))


def _patient_wait_http(url: str, *, timeout: float = 30.0, proc: object = None) -> None:
    _wait_http(url, timeout=max(timeout, START_TIMEOUT), proc=proc)  # type: ignore[arg-type]


_wait_http = deploy.stack.wait_http


def run_standalone(scenario: str, args: argparse.Namespace, database_url: str) -> object:
    # A database and a Redis port of this checkout's own, so that two checkouts can
    # benchmark on one machine at once (BENCH_INDEX_DATABASE_URL and
    # BENCH_BOARDS_DATABASE_URL still win).
    module, suffix, sizes = STANDALONE[scenario]
    name = urlparse(database_url).path.lstrip("/") + f"_{suffix}"
    variable = f"BENCH_{suffix.upper()}_DATABASE_URL"
    env = {
        **os.environ,
        variable: os.environ.get(
            variable, urlparse(database_url)._replace(path=f"/{name}").geturl()
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        command = [
            sys.executable,
            "-m",
            module,
            "--sizes",
            getattr(args, sizes),
            "--redis-port",
            str(free_port()),
            "--json",
            str(out),
        ]
        subprocess.run(command, check=True, env=env)
        return json.loads(out.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only",
        default=",".join(dict.fromkeys([*STANDALONE, *SCENARIOS])),
        help="comma-separated scenarios (index,boards,read,write,fanout)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="read, write (with pgbench) and fan-out at 1,000 viewers, 2 s each: under 2 min",
    )
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each measurement")
    parser.add_argument(
        "--read-rounds",
        type=int,
        default=2,
        help="rounds of interleaved /healthz and read segments (each --seconds/rounds long)",
    )
    parser.add_argument(
        "--write-rounds",
        type=int,
        default=2,
        help="rounds of alternating pgbench and completion segments (each --seconds/rounds)",
    )
    parser.add_argument(
        "--writer-processes",
        type=int,
        default=1,
        help="processes of the completion load generator (more if one is CPU-bound)",
    )
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
        "--board-viewers",
        default="5x1000",
        metavar="BxN",
        help="fanout: N viewers on each of B boards at once against B x N on one board "
        "(default 5x1000; empty: off, as in --quick)",
    )
    parser.add_argument(
        "--board-rounds",
        type=int,
        default=3,
        help="rounds of the two board layouts, alternating (default 3)",
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
    parser.add_argument(
        "--board-sizes",
        default="100000,1000000",
        help="ranked users in one period for the boards scenario (the last is closed)",
    )
    parser.add_argument(
        "--boards-rounds",
        type=int,
        default=8,
        help="rounds of (four boards, global only) segments, each --seconds/2 long",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--results-dir", type=Path, default=RESULTS, help="where <UTC time>.json and .md go"
    )
    parser.add_argument(
        "--keep-max-requests",
        action="store_true",
        help="keep gunicorn's worker recycling (max_requests) during the run",
    )
    parser.add_argument(
        "--no-fraud-rules",
        action="store_true",
        help="every fraud rule's weight 0 (the completion path without the rules)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy records gunicorn, daphne and Celery during each scenario into DIR",
    )
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)  # new defaults: options given explicitly still win
    args = parser.parse_args(argv)

    chosen = list(dict.fromkeys(name.strip() for name in args.only.split(",") if name.strip()))
    unknown = [name for name in chosen if name not in SCENARIOS and name not in STANDALONE]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    meta = report.machine()
    meta["args"] = {k: str(v) for k, v in vars(args).items()}
    results: dict[str, object] = {}
    for name in chosen:
        if name in STANDALONE:
            results[name] = run_standalone(name, args, database_url)
    chosen = [name for name in chosen if name in SCENARIOS]
    if not chosen:
        return _write(args, meta, results, {})

    redis_url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    prefix = f"sbbench-{secrets.token_hex(4)}"
    env = {
        "REDIS_KEY_PREFIX": prefix,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
        **scenarios.STACK_ENV,
    }
    changed = {k: v for k, v in scenarios.STACK_ENV.items() if k != "LOG_LEVEL"}
    if not args.keep_max_requests:
        # deploy/gunicorn_conf.py recycles a worker after 5,000 (+ up to 500) requests;
        # the two workers reach that together and each new one imports Django again
        # (seconds of CPU on these cores), which stalls every figure measured meanwhile.
        # The run turns recycling off and counts worker boots; --keep-max-requests not.
        env["GUNICORN_CMD_ARGS"] = changed["GUNICORN_CMD_ARGS"] = "--max-requests 0"
    if args.no_fraud_rules:
        from fraud.rules import RULES

        env["FRAUD_RULE_WEIGHTS"] = ",".join(f"{name}=0" for name in RULES)
    phases: dict[str, float] = {}
    began = time.monotonic()
    stack = Stack(
        web=args.web,
        ws=args.ws,
        beat=False,
        bootstrap=False,  # the database is a copy of a bootstrapped template (below)
        database_url=database_url,
        redis_url=redis_url,
        extra_env=env,
    )
    databases.database_from_template(database_url, stack.env(DATABASE_URL=database_url))
    phases["database"] = time.monotonic() - began
    deploy.stack.wait_http = _patient_wait_http
    with stack.running():
        phases["stack start"] = time.monotonic() - began - sum(phases.values())
        scenarios.setup_django(stack)
        phases["django setup here"] = time.monotonic() - began - sum(phases.values())
        world = scenarios.World.create(stack, users=args.users)
        phases["players"] = time.monotonic() - began - sum(phases.values())
        for name in chosen:
            print(f"== {name}", flush=True)
            boots = _worker_boots(stack)
            with profile.recording(stack, args.profile, name):
                got = asyncio.run(SCENARIOS[name](world, args))
            # A gunicorn worker that (re)starts imports Django again, on the same cores.
            got["gunicorn_worker_boots"] = _worker_boots(stack) - boots
            standalone = results.get(name)
            results[name] = {**standalone, **got} if isinstance(standalone, dict) else got
            phases[name] = time.monotonic() - began - sum(phases.values())
            print(json.dumps(results[name], indent=2), flush=True)
    databases.drop_redis_prefix(redis_url, prefix)
    meta["phase_seconds"] = {k: round(v, 1) for k, v in phases.items()}
    return _write(args, meta, results, changed)


def _worker_boots(stack: Stack) -> int:
    return sum(
        proc.log_path.read_text(errors="replace").count("Booting worker")
        for proc in stack.processes
        if proc.name.startswith("gunicorn")
    )


def _write(
    args: argparse.Namespace,
    meta: dict[str, object],
    results: dict[str, object],
    changed: dict[str, str],
) -> int:
    meta = report.finish(meta)
    table = report.rows(results)
    text = report.markdown(meta, table, changed, report.notes(results))
    document = {"machine": meta, "changed_settings": changed, "results": results}
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / f"{stamp}.json").write_text(json.dumps(document, indent=2))
    (args.results_dir / f"{stamp}.md").write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2))
    print(text, flush=True)
    print(f"results: {args.results_dir / stamp}.json and .md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
