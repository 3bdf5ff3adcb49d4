"""Coalesced broadcasting of the top of the board.

Every daphne process with viewers runs one small loop. Each interval
(LEADERBOARD_BROADCAST_INTERVAL_MS), at most one process in the whole deployment wins a
Redis lock (`SET NX PX interval`); the winner takes the board's dirty mark, computes the
top N, and, only when it differs from the last push, sends ONE `leaderboard.push` to the
board's group. The payload is JSON-encoded once; every consumer forwards the same text.
On the pub/sub channel layer a group send is one PUBLISH that every instance delivers to
its own sockets. So the cost grows with viewers, not with the rate of completions.

In the embedded default (no Redis, one process) the same loop runs on in-memory state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from typing import Any

from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from scoreboard import metrics

logger = logging.getLogger(__name__)

BOARD_GROUP = "leaderboard.board"


def user_group(user_id: uuid.UUID | str) -> str:
    return f"leaderboard.user.{user_id}"


class _LocalState:
    """The embedded default's stand-in for the Redis keys below (one process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dirty_since: float | None = None
        self.version = 0
        self.last_top: list[dict[str, Any]] = []


_local = _LocalState()


def _keys() -> dict[str, str]:
    base = f"{settings.REDIS_KEY_PREFIX}:lb"
    return {"tick": f"{base}:tick", "pv": f"{base}:pv", "last": f"{base}:last"}


def _redis() -> Any:
    from django_redis import get_redis_connection

    return get_redis_connection("strict")


def mark_dirty() -> None:
    """Tell the broadcaster the board may have changed (the Redis index marks itself)."""
    if settings.EMBEDDED:
        with _local.lock:
            if _local.dirty_since is None:
                _local.dirty_since = time.time()


def push_version() -> int:
    """The version of the last push: a client that sees a gap after it asks for a snapshot."""
    if settings.EMBEDDED:
        return _local.version
    return int(_redis().get(_keys()["pv"]) or 0)


def _changes(top: list[dict[str, Any]], previous: list[dict[str, Any]]) -> list[dict[str, Any]]:
    before = {entry["userId"]: entry for entry in previous}
    changes = []
    for entry in top:
        old = before.get(entry["userId"])
        if old is None or old["score"] != entry["score"] or old["rank"] != entry["rank"]:
            changes.append(
                {
                    "userId": entry["userId"],
                    "username": entry["username"],
                    "score": entry["score"],
                    "rank": entry["rank"],
                    "previousRank": old["rank"] if old else None,
                }
            )
    return changes


def tick() -> str | None:
    """One broadcaster turn: the encoded update to push, or None. Runs in a thread."""
    from leaderboard.selectors import leaderboard_top

    interval_ms = settings.LEADERBOARD_BROADCAST_INTERVAL_MS
    if settings.EMBEDDED:
        with _local.lock:
            since, _local.dirty_since = _local.dirty_since, None
        if since is None:
            return None
        top = leaderboard_top(n=settings.LEADERBOARD_TOP_N)
        if top == _local.last_top:
            return None
        changes = _changes(top, _local.last_top)
        _local.version += 1
        _local.last_top = top
        version = _local.version
    else:
        from leaderboard.index import IndexColdError, RedisIndex

        client, keys = _redis(), _keys()
        if not client.set(keys["tick"], "1", nx=True, px=interval_ms):
            return None  # another process pushes in this interval
        since = RedisIndex().take_dirty()
        if since is None:
            return None
        try:
            top = leaderboard_top(n=settings.LEADERBOARD_TOP_N, index_only=True)
        except IndexColdError:
            return None  # never push a partial board; the rebuild marks the board dirty
        raw_last = client.get(keys["last"])
        previous = json.loads(raw_last) if raw_last else []
        if top == previous:
            return None
        changes = _changes(top, previous)
        pipe = client.pipeline(transaction=True)
        pipe.incr(keys["pv"])
        pipe.set(keys["last"], json.dumps(top))
        version = int(pipe.execute()[0])
    metrics.broadcast_lag.observe(max(0.0, time.time() - since))
    return json.dumps(
        {"type": "leaderboard.update", "entries": top, "changes": changes, "version": version},
        separators=(",", ":"),
    )


class Broadcaster:
    """The per-process loop; started by the first consumer that connects."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self.run())

    async def run(self) -> None:
        layer = get_channel_layer()
        interval = settings.LEADERBOARD_BROADCAST_INTERVAL_MS / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                text = await sync_to_async(tick, thread_sensitive=False)()
                if text is not None:
                    await layer.group_send(BOARD_GROUP, {"type": "leaderboard.push", "text": text})
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.backing_service_errors.labels("broadcaster").inc()
                logger.exception("broadcast turn failed")
                await asyncio.sleep(min(5.0, interval * 10))


broadcaster = Broadcaster()
