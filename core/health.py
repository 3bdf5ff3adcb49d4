"""Readiness checks of the backing services, each bounded in time."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

from core.dbwait import wait_budget
from core.metrics import redis_latency
from core.redis_client import redis_strict

logger = logging.getLogger(__name__)


class Check(TypedDict):
    ok: bool
    latencyMs: float
    detail: str


def _timed(fn: Callable[[], object]) -> Check:
    start = time.perf_counter()
    try:
        detail = str(fn() or "ok")
        ok = True
    except Exception as exc:
        logger.warning("readiness check failed: %s", exc)
        ok, detail = False, f"{type(exc).__name__}"
    return {"ok": ok, "latencyMs": round((time.perf_counter() - start) * 1000, 2), "detail": detail}


class _DatabaseProbe:
    """`SELECT 1` in a thread of its own, awaited at most READINESS_DB_TIMEOUT_SECONDS.

    A stalled PostgreSQL holds a connection attempt for the connect timeout and a pooled
    connection's wait for the pool's: the probe answers within its budget all the same.
    One probe at a time: while one is still waiting, the next probe awaits it instead of
    starting another, so a stalled server never piles threads up.
    """

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz-db")
        self._lock = threading.Lock()
        self._pending: Future[str] | None = None

    def __call__(self) -> str:
        budget = settings.READINESS_DB_TIMEOUT_SECONDS
        with self._lock:
            if self._pending is None or self._pending.done():
                self._pending = self._executor.submit(self._select_one, budget)
            pending = self._pending
        try:
            return pending.result(timeout=budget)
        except FutureTimeout:
            raise TimeoutError(f"no answer within {budget:g} s") from None

    @staticmethod
    def _select_one(budget: float) -> str:
        try:
            with wait_budget(budget), connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            return connection.vendor
        finally:
            # Not kept by this thread: back to the pool, or closed.
            connection.close()


_check_database = _DatabaseProbe()


def _check_redis() -> str:
    start = time.perf_counter()
    redis_strict().ping()
    redis_latency.observe(time.perf_counter() - start)
    return "ok"


def _check_channel_layer() -> str:
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer configured")
    async_to_sync(layer.group_send)("health", {"type": "health.ping"})
    return type(layer).__name__


def readiness() -> dict[str, Check]:
    checks = {"database": _timed(_check_database)}
    if settings.REDIS_URL:
        checks["redis"] = _timed(_check_redis)
    checks["channel_layer"] = _timed(_check_channel_layer)
    return checks
