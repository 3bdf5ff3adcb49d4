"""Readiness checks of the backing services, each bounded in time."""

from __future__ import annotations

import logging
import time
from typing import TypedDict

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import connection

logger = logging.getLogger(__name__)


class Check(TypedDict):
    ok: bool
    latencyMs: float
    detail: str


def _timed(fn) -> Check:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    try:
        detail = fn() or "ok"
        ok = True
    except Exception as exc:
        logger.warning("readiness check failed: %s", exc)
        ok, detail = False, f"{type(exc).__name__}"
    return {"ok": ok, "latencyMs": round((time.perf_counter() - start) * 1000, 2), "detail": detail}


def _check_database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return connection.vendor


def _check_redis() -> str:
    from django_redis import get_redis_connection

    from scoreboard.metrics import redis_latency

    start = time.perf_counter()
    get_redis_connection("strict").ping()
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
