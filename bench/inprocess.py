"""CPU per request of Django's WSGI handler, in this process, without a server.

Calls the project's WSGI application directly with a built `environ`, so what it
measures is Django, DRF, the middleware and the view (with their PostgreSQL and Redis
calls), without gunicorn, nginx or a load generator: the part of a request's cost the
project's own code decides. Each path is measured in alternating rounds of `--requests`
calls (process CPU, user + system), and `--profile` prints the functions with most
cumulative time (cProfile) for the last path.

It runs against the database and Redis the environment names (`DATABASE_URL`,
`REDIS_URL`), which must already be migrated and hold a board: for example the bench's
own database after a run, or `make stack`'s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/scoreboard_bench \\
    REDIS_URL=redis://127.0.0.1:6379/0 \\
    .venv/bin/python -m bench.inprocess /healthz "/api/v1/leaderboard/?limit=10"
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any


def _environ(path: str, query: str, headers: dict[str, str]) -> dict[str, Any]:
    from django.test.client import RequestFactory

    return RequestFactory()._base_environ(
        **headers,
        PATH_INFO=path,
        QUERY_STRING=query,
        REQUEST_METHOD="GET",
        SERVER_NAME="127.0.0.1",
        HTTP_HOST="127.0.0.1",
    )


def caller(
    application: Callable[..., Iterable[bytes]], target: str, headers: dict[str, str] | None = None
) -> Callable[[], str]:
    """One GET of `target` ("/path?query") through `application`, with `headers` (WSGI
    names: HTTP_AUTHORIZATION); returns the status."""
    path, _, query = target.partition("?")
    answered: list[str] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> None:
        answered.append(status)

    def call() -> str:
        body = application(_environ(path, query, headers or {}), start_response)
        try:
            b"".join(body)
        finally:
            getattr(body, "close", lambda: None)()
        return answered.pop()

    return call


def cpu_per_request(call: Callable[[], str], requests: int) -> float:
    """Process CPU (user + system) per call, in microseconds."""
    began = time.process_time()
    for _ in range(requests):
        call()
    return (time.process_time() - began) / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help='paths with their query, e.g. "/healthz"')
    parser.add_argument("--requests", type=int, default=3000, help="calls a round (3000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each path (3)")
    parser.add_argument("--profile", action="store_true", help="cProfile the last path")
    parser.add_argument(
        "--bearer", metavar="TOKEN", help="send this access token (Authorization: Bearer)"
    )
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    application = WSGIHandler()
    headers = {"HTTP_AUTHORIZATION": f"Bearer {args.bearer}"} if args.bearer else {}
    calls = {target: caller(application, target, headers) for target in args.paths}
    for target, call in calls.items():
        status = call()
        print(f"{target}: {status}")
        for _ in range(min(200, args.requests)):  # warm: connections, caches, scripts
            call()
    figures: dict[str, list[float]] = {target: [] for target in calls}
    for _ in range(args.rounds):
        for target, call in calls.items():
            figures[target].append(cpu_per_request(call, args.requests))
    for target, values in figures.items():
        shown = ", ".join(f"{v:.0f}" for v in values)
        print(f"{target}: {min(values):.0f} us CPU a request (rounds: {shown})")
    if args.profile:
        profiler = cProfile.Profile()
        last = calls[args.paths[-1]]
        profiler.runcall(lambda: [last() for _ in range(args.requests)])
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
