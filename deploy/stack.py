"""The real stack on this machine's loopback, without Docker.

gunicorn (REST) and daphne (WebSockets) instances behind nginx, a Celery worker and beat,
on the local PostgreSQL and Redis: the shape docker-compose.yml describes. Used by
`make stack`, by the end-to-end tests and by the benchmarks.

    python -m deploy.stack --web 2 --ws 2 --port 8080

Every process runs in a process group of its own and is stopped by pid on exit.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LOCATIONS = ROOT / "deploy" / "nginx" / "locations.conf"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/scoreboard"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StackError(RuntimeError):
    """The stack could not start, for a reason the operator can act on (the message)."""


def wait_http(url: str, *, timeout: float = 30.0, proc: Process | None = None) -> None:
    """Wait until `url` answers 200, or raise with the process's log tail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise StackError(f"{proc.name} exited early:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise StackError(f"{url} did not answer in {timeout}s" + (proc.log_tail() if proc else ""))


@dataclass
class Process:
    """One server process in a process group of its own, logging to a file."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("wb")
        self.popen = subprocess.Popen(  # noqa: S603 - argv built here, no shell
            self.argv,
            cwd=ROOT,
            env=dict(self.env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        return self

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 8.0) -> None:
        if self.popen is None:
            return
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=5)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def ensure_database(database_url: str) -> None:
    """Create the PostgreSQL database named by the URL if it does not exist."""
    import psycopg

    parsed = urlparse(database_url)
    name = parsed.path.lstrip("/")
    admin = parsed._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')  # name comes from our own settings


# Connections each nginx worker keeps for plain HTTP whatever the WebSocket crowd does:
# a proxied WebSocket holds two of a worker's connections (client and upstream), so the
# sockets a worker may proxy are capped at (worker_connections - REST_RESERVE) / 2 with
# `max_conns` on the daphne upstreams (per worker without a shared zone). A flood past
# that gets nginx's 503 and never takes the connections a completion request needs.
REST_RESERVE = 1024
# File descriptors a process keeps for everything but client sockets (logs, upstream
# keepalive, listeners, Redis, PostgreSQL).
FD_RESERVE = 64
NOFILE_CEILING = 1_048_576


def raise_nofile_limit() -> int:
    """Raise this process's soft RLIMIT_NOFILE to its hard limit; return the new limit.

    Children started afterwards (daphne, nginx) inherit it.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = NOFILE_CEILING if hard == resource.RLIM_INFINITY else hard
    if soft == resource.RLIM_INFINITY or soft >= target:
        return min(target, NOFILE_CEILING)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    return soft


# Twisted listens with a backlog of 50 unless told otherwise: a crowd connecting through
# nginx overflows it while daphne is busy (a push to thousands of sockets), and each
# dropped connection comes back to the client as nginx's 503. nginx's own is 4096 too.
DAPHNE_BACKLOG = 4096


# daphne pings a socket that has sent nothing for this long (default 20 s) and closes it
# if no pong comes within 30 s. A ping and its pong cost about as much as a push to that
# socket (autobahn builds and parses both in Python): at 10,000 mostly silent viewers the
# default spent a tenth of daphne's loop on them. A dead viewer is found within 90 s.
DAPHNE_PING_INTERVAL = 60


def daphne_endpoint(host: str, port: int) -> str:
    """daphne's `-e` endpoint for `host:port` with a listen backlog of DAPHNE_BACKLOG."""
    return f"tcp:port={port}:interface={host}:backlog={DAPHNE_BACKLOG}"


@dataclass(frozen=True)
class NginxSizing:
    """nginx sized for the file-descriptor limit: see REST_RESERVE."""

    worker_processes: int
    rlimit_nofile: int

    @property
    def worker_connections(self) -> int:
        return self.rlimit_nofile - FD_RESERVE

    @property
    def websockets_per_worker(self) -> int:
        return max(1, (self.worker_connections - REST_RESERVE) // 2)

    @property
    def websockets_total(self) -> int:
        return self.websockets_per_worker * self.worker_processes

    def max_conns_per_server(self, servers: int) -> int:
        return max(1, self.websockets_per_worker // max(1, servers))

    @classmethod
    def for_this_machine(cls, workers: int | None = None) -> NginxSizing:
        return cls(
            worker_processes=workers or min(4, os.cpu_count() or 1),
            rlimit_nofile=raise_nofile_limit(),
        )


def nginx_config(
    *, port: int, web: list[int], ws: list[int], workdir: Path, sizing: NginxSizing | None = None
) -> str:
    sizing = sizing or NginxSizing.for_this_machine()
    max_conns = sizing.max_conns_per_server(len(ws))

    def servers(ports: list[int], extra: str = "") -> str:
        return " ".join(f"server 127.0.0.1:{p}{extra};" for p in ports)

    temp = workdir / "nginx-temp"
    # reuseport: the kernel spreads new connections evenly over the workers, so no worker
    # fills up while another idles.
    return f"""
daemon off;
worker_processes {sizing.worker_processes};
worker_rlimit_nofile {sizing.rlimit_nofile};
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections {sizing.worker_connections}; }}
http {{
    log_format noquery '$remote_addr "$request_method $uri" $status $body_bytes_sent '
                       '$request_time $upstream_response_time $request_id';
    access_log {workdir}/nginx-access.log noquery buffer=64k flush=1s;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    server_tokens off;
    upstream web {{ {servers(web)} keepalive 32; keepalive_timeout 60s; }}
    upstream ws {{ {servers(ws, f" max_conns={max_conns}")} }}
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    map "$http_authorization$cookie_sessionid" $scoreboard_credentials {{ default 1; "" 0; }}
    proxy_cache_path {temp}/reads levels=1 keys_zone=reads:10m max_size=64m inactive=10m
        use_temp_path=off;
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        include {LOCATIONS};
    }}
}}
"""


@dataclass
class Stack:
    """`web` gunicorn and `ws` daphne instances behind nginx, with Celery worker and beat."""

    web: int = 2
    ws: int = 2
    port: int = 0
    worker: bool = True
    beat: bool = True
    gunicorn_workers: int = 2
    nginx_sizing: NginxSizing | None = None
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str = DEFAULT_REDIS_URL
    extra_env: dict[str, str] = field(default_factory=dict)
    bootstrap: bool = True
    proxy: bool = True
    processes: list[Process] = field(default_factory=list)
    web_ports: list[int] = field(default_factory=list)
    ws_ports: list[int] = field(default_factory=list)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="scoreboard-")))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "0",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "CELERY_TASK_ALWAYS_EAGER": "0",
            "TRUSTED_PROXY_COUNT": "1",
            "PYTHONUNBUFFERED": "1",
            "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / "metrics"),
        }
        env.setdefault("SECRET_KEY", secrets.token_urlsafe(48))
        env.setdefault("JWT_SIGNING_KEY", secrets.token_urlsafe(48))
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def _spawn(self, name: str, argv: list[str], env: Mapping[str, str]) -> Process:
        proc = Process(name, argv, env, self.workdir / f"{name}.log").start()
        self.processes.append(proc)
        return proc

    def start(self) -> Stack:
        # daphne and nginx inherit the raised limit: thousands of sockets each.
        raise_nofile_limit()
        # One set of secrets for every process, fixed before any of them starts.
        self.extra_env = {**self.env(), **self.extra_env}
        (self.workdir / "metrics").mkdir(exist_ok=True)
        if self.database_url.startswith("postgres"):
            ensure_database(self.database_url)
        if self.bootstrap:
            done = subprocess.run(
                [sys.executable, "manage.py", "bootstrap"],
                cwd=ROOT,
                env=self.env(),
                check=False,
                timeout=180,
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                # Its own words (a failed system check, a database that is down), not ours.
                raise StackError((done.stderr or done.stdout).strip())
        self.port = self.port or free_port()
        try:
            for i in range(self.web):
                port = free_port()
                self.web_ports.append(port)
                self._spawn(
                    f"gunicorn-{i}",
                    [
                        str(BIN / "gunicorn"),
                        "config.wsgi:application",
                        "-c",
                        "deploy/gunicorn_conf.py",
                    ],
                    self.env(
                        GUNICORN_BIND=f"127.0.0.1:{port}",
                        GUNICORN_WORKERS=str(self.gunicorn_workers),
                    ),
                )
            for i in range(self.ws):
                port = free_port()
                self.ws_ports.append(port)
                self._spawn(
                    f"daphne-{i}",
                    [
                        str(BIN / "daphne"),
                        "-e",
                        daphne_endpoint("127.0.0.1", port),
                        "--ping-interval",
                        str(DAPHNE_PING_INTERVAL),
                        "--proxy-headers",
                        "config.asgi:application",
                    ],
                    self.env(),
                )
            if self.worker:
                self._spawn(
                    "celery-worker",
                    [
                        str(BIN / "celery"),
                        "-A",
                        "config",
                        "worker",
                        "--loglevel",
                        "INFO",
                        "--concurrency",
                        "2",
                        "--without-gossip",
                        "--without-mingle",
                    ],
                    self.env(),
                )
            if self.beat:
                self._spawn(
                    "celery-beat",
                    [
                        str(BIN / "celery"),
                        "-A",
                        "config",
                        "beat",
                        "--loglevel",
                        "INFO",
                        "--schedule",
                        str(self.workdir / "beat-schedule"),
                    ],
                    self.env(),
                )
            for proc, port in zip(self.processes, self.web_ports + self.ws_ports, strict=False):
                # Every process imports Django at once; on two busy cores that has taken
                # more than 30 s.
                wait_http(f"http://127.0.0.1:{port}/healthz", timeout=120, proc=proc)
            if not self.proxy:
                return self
            (self.workdir / "nginx-temp").mkdir(mode=0o777, exist_ok=True)
            self.workdir.chmod(0o755)
            conf = self.workdir / "nginx.conf"
            conf.write_text(
                nginx_config(
                    port=self.port,
                    web=self.web_ports,
                    ws=self.ws_ports,
                    workdir=self.workdir,
                    sizing=self.nginx_sizing or NginxSizing.for_this_machine(),
                )
            )
            nginx = self._spawn(
                "nginx", [nginx_binary(), "-c", str(conf), "-p", str(self.workdir)], self.env()
            )
            wait_http(f"{self.url}/healthz", proc=nginx)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
        self.processes.clear()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    @contextlib.contextmanager
    def running(self) -> Iterator[Stack]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


def nginx_binary() -> str:
    found = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if not found:
        raise StackError("nginx is not installed (Debian: apt-get install nginx-light)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--web", type=int, default=2, help="gunicorn instances (default 2)")
    parser.add_argument("--ws", type=int, default=2, help="daphne instances (default 2)")
    parser.add_argument("--port", type=int, default=8080, help="nginx port (default 8080)")
    parser.add_argument("--no-worker", action="store_true", help="no Celery worker and beat")
    args = parser.parse_args(argv)
    stack = Stack(
        web=args.web,
        ws=args.ws,
        port=args.port,
        worker=not args.no_worker,
        beat=not args.no_worker,
        database_url=os.environ.get("DATABASE_URL", DEFAULT_DATABASE_URL),
        redis_url=os.environ.get("REDIS_URL", DEFAULT_REDIS_URL),
    )
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        stack.start()
    except StackError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"Scoreboard stack on {stack.url} (logs in {stack.workdir}); Ctrl-C stops it.")
    print(f"  gunicorn: {stack.web_ports}  daphne: {stack.ws_ports}")
    try:
        while not stopping:
            time.sleep(0.5)
            dead = [p.name for p in stack.processes if not p.alive()]
            if dead:
                print(f"stopped: {', '.join(dead)} exited", file=sys.stderr)
                return 1
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
