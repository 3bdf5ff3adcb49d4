"""Fault scenarios: real processes on loopback, broken on purpose by the test."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from django.conf import settings

from deploy.stack import Stack, free_port
from tests.e2e.conftest import test_database_url


class OwnRedis:
    """A redis-server of the test's own on a free port, without persistence."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="faults-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--enable-debug-command",
                "local",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis(port=self.port, socket_timeout=1).ping():
                    return
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=10)


@pytest.fixture(scope="module")
def own_redis() -> Iterator[OwnRedis]:
    server = OwnRedis()
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def start_stack(django_db_setup, django_db_blocker) -> Iterator[Callable[..., Stack]]:  # type: ignore[no-untyped-def]
    """Start a Stack on the test database (and this run's Redis unless `redis_url` says
    otherwise); every stack started is stopped, by pid, at module end."""
    started: list[Stack] = []

    def start(**options: object) -> Stack:
        options = {
            "beat": False,
            "bootstrap": False,
            "gunicorn_workers": 1,
            "redis_url": settings.REDIS_URL,
            "database_url": test_database_url(),
            **options,
        }
        stack = Stack(**options)  # type: ignore[arg-type]
        started.append(stack)
        with django_db_blocker.unblock():
            return stack.start()

    yield start
    for stack in started:
        if os.environ.get("FAULTS_KEEP_LOGS"):
            stack.stop()
            print(f"logs kept in {stack.workdir}")
        else:
            stack.cleanup()
