"""What the fraud rules cost a completion, measured in one process, rules on and off in
alternating blocks of the same run (so the machine's noise falls on both alike).

Completions go through Django's test client (the whole view, authentication, checks, the
transaction and the after-commit work) against a database of its own and the local Redis,
with no HTTP server and no load generator in the way.

    python -m bench.fraud_cost [--blocks 6] [--per-block 60]

With `--geoip N` the blocks alternate the rules on without a GeoIP database and the rules
on with one (N city networks written for the run, each player on an address of its own
in them): what looking up where a completion came from, and the travel rule, add.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.geoip import City, write_city_database

DATABASE_URL = os.environ.get(
    "BENCH_FRAUD_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/scoreboard_bench_fraud"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blocks", type=int, default=6, help="blocks per mode (default 6)")
    parser.add_argument("--per-block", type=int, default=60, help="completions per block")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument(
        "--geoip",
        type=int,
        default=0,
        metavar="N",
        help="compare the rules without and with a GeoIP City database of N networks",
    )
    args = parser.parse_args(argv)

    from bench.databases import recreate_database

    recreate_database(DATABASE_URL)
    prefix = f"sbfraud-{secrets.token_hex(4)}"
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "SCOREBOARD_READ_DOT_ENV": "0",
            "DATABASE_URL": DATABASE_URL,
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            "REDIS_KEY_PREFIX": prefix,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "CELERY_BROKER_URL": "memory://",
            "COMPLETION_RATE_PER_USER": "100000/m",
            "COMPLETION_RATE_PER_IP": "1000000/m",
            "LOG_LEVEL": "ERROR",
            # One client address for every player: the farm rule would flag them all.
            "FRAUD_RULE_WEIGHTS": "ip_farm=0",
        }
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from accounts.models import User
    from accounts.tokens import access_token_for
    from actions.models import ActionType
    from bench.databases import drop_redis_prefix

    call_command("migrate", verbosity=0)
    ActionType.objects.create(id="bench-click", name="Bench click", reward=1)
    User.objects.bulk_create(
        [User(username=f"f{i:05d}", email=f"f{i:05d}@example.com") for i in range(args.users)]
    )
    geoip_path, addresses = "", ["127.0.0.1"]
    if args.geoip:
        geoip_path, addresses = city_database(args.geoip)
    clients = []
    for i, user in enumerate(User.objects.order_by("username")):
        client = APIClient(SERVER_NAME="127.0.0.1", REMOTE_ADDR=addresses[i % len(addresses)])
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
        clients.append(client)
    rules_on = dict(settings.FRAUD_RULE_WEIGHTS)
    # Without --geoip: the rules off against on. With it: on without a database against on
    # with one (the rules' time inside is then measured in both).
    rules_off = dict(rules_on) if args.geoip else dict.fromkeys(rules_on, 0.0)

    # Time spent inside the rules (assessment and memory) during the blocks with rules:
    # its share of those blocks' time is the rules' cost, whatever the machine's noise.
    from actions import services

    inside = [0.0]

    def timed(fn):  # type: ignore[no-untyped-def]
        def wrapper(**kwargs):  # type: ignore[no-untyped-def]
            began = time.perf_counter()
            try:
                return fn(**kwargs)
            finally:
                inside[0] += time.perf_counter() - began

        return wrapper

    services.fraud_assess = timed(services.fraud_assess)
    services.fraud_remember = timed(services.fraud_remember)

    spent = [0.0]
    # The rules' time per completion in each block, by mode: with --geoip the blocks with
    # the database against those without (medians, as a loaded machine's stalls fall on
    # some blocks only).
    ms_on: list[float] = []
    ms_off: list[float] = []

    def complete(client: APIClient) -> None:
        token = client.post("/api/v1/actions/bench-click/start/").json()["actionToken"]
        done = client.post(
            "/api/v1/actions/complete/",
            {"actionId": "bench-click", "actionToken": token},
            format="json",
        )
        if done.status_code != 200:
            raise SystemExit(f"completion failed: {done.status_code} {done.content!r}")

    def mode(weights: dict[str, float]) -> None:
        settings.FRAUD_RULE_WEIGHTS = weights
        settings.GEOIP_PATH = geoip_path if weights is rules_on else ""

    def block(weights: dict[str, float], start: int) -> float:
        mode(weights)
        before = inside[0]
        began = time.perf_counter()
        for i in range(args.per_block):
            complete(clients[(start + i * 7) % len(clients)])
        elapsed = time.perf_counter() - began
        (ms_on if weights is rules_on else ms_off).append(
            (inside[0] - before) / args.per_block * 1000
        )
        if weights is rules_on:
            spent[0] += elapsed
        return args.per_block / elapsed

    try:
        # Warm up every player once in each mode: a user's first request in the process
        # loads them (about 10 ms), which would otherwise fall inside the rules' time of
        # whichever block first has them.
        for weights in (rules_on, rules_off):
            mode(weights)
            for client in clients:
                complete(client)
        ms_on.clear()
        ms_off.clear()
        spent[0] = 0.0
        on, off = [], []
        for b in range(args.blocks):
            off.append(block(rules_off, b * 1000))
            on.append(block(rules_on, b * 1000 + 500))
    finally:
        drop_redis_prefix(settings.REDIS_URL, prefix)
        if geoip_path:
            shutil.rmtree(Path(geoip_path).parent, ignore_errors=True)
    result = {
        "completions_per_s_rules_off": round(statistics.median(off), 1),
        "completions_per_s_rules_on": round(statistics.median(on), 1),
        "ratio_on_to_off": round(statistics.median(on) / statistics.median(off), 3),
        "rules_ms_per_completion": round(statistics.fmean(ms_on), 3),
        "rules_share_of_completion_time": round(
            statistics.fmean(ms_on) * args.per_block * args.blocks / 1000 / spent[0], 4
        ),
        "blocks": args.blocks,
        "per_block": args.per_block,
        "off_each": [round(x, 1) for x in off],
        **(
            {
                "geoip_networks": args.geoip,
                "rules_ms_median_with_geoip": round(statistics.median(ms_on), 3),
                "rules_ms_median_without_geoip": round(statistics.median(ms_off), 3),
                "rules_ms_ratio_with_to_without_geoip": round(
                    statistics.median(ms_on) / statistics.median(ms_off), 3
                ),
                "rules_ms_with_each": [round(x, 3) for x in ms_on],
                "rules_ms_without_each": [round(x, 3) for x in ms_off],
            }
            if args.geoip
            else {}
        ),
        "on_each": [round(x, 1) for x in on],
    }
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


def city_database(networks: int) -> tuple[str, list[str]]:
    """A City database of `networks` /24s with cities of their own, written to a
    temporary file (the test suite's writer), and one address in each."""
    rng = random.Random(21)
    # Public /24s from 11.0.0.0 on (data only: nothing is sent to them).
    cidrs = [f"{11 + i // 65536}.{i // 256 % 256}.{i % 256}.0/24" for i in range(networks)]
    cities = {
        cidr: City(f"City {i}", "ZZ", rng.uniform(-60, 70), rng.uniform(-180, 180), 50)
        for i, cidr in enumerate(cidrs)
    }
    path = Path(tempfile.mkdtemp(prefix="sbfraud-geoip-")) / "GeoLite2-City.mmdb"
    write_city_database(path, cities)
    return str(path), [cidr.replace(".0/24", ".7") for cidr in cidrs]


if __name__ == "__main__":
    raise SystemExit(main())
