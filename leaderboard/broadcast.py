"""Coalesced broadcasting of the top of the board, written once per process.

Every daphne process with viewers runs two small tasks:

- the *broadcaster* loop: each interval (LEADERBOARD_BROADCAST_INTERVAL_MS), at most one
  process in the whole deployment wins a Redis lock (`SET NX PX interval`); the winner
  takes the board's dirty mark, computes the top N and, only when it differs from the
  last push, encodes ONE `leaderboard.update` and PUBLISHes it on the board's Redis
  channel;
- the *subscriber*: one Redis pub/sub subscription per process. It receives each push
  once and writes the same pre-encoded text frame to every socket of this process
  (`LocalViewers`), calling each socket's ASGI `send` directly.

So a push costs one JSON encoding and one PUBLISH in the deployment, one message per
process, and one frame write per socket: no channel-layer message and no consumer
dispatch per viewer (each of those costs a thread hop in Channels, about 1 ms of a core).
The cost grows with viewers, not with the rate of completions. `me.update` (one message
per user) still goes through the channel layer's per-user group.

In the embedded default (no Redis, one process) the broadcaster hands the frame to the
local sockets itself.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings

from scoreboard import metrics

logger = logging.getLogger(__name__)


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


def push_channel() -> str:
    """The Redis pub/sub channel that carries each encoded push to every process."""
    return f"{settings.REDIS_KEY_PREFIX}:lb:push"


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
        from leaderboard.index import RedisIndex

        client, keys = _redis(), _keys()
        if not client.set(keys["tick"], "1", nx=True, px=interval_ms):
            return None  # another process pushes in this interval
        since = RedisIndex().take_dirty()
        if since is None:
            return None
        top = leaderboard_top(n=settings.LEADERBOARD_TOP_N)
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


def publish(text: str) -> None:
    """Hand one encoded push to every process's subscriber (one PUBLISH). Runs in a thread."""
    _redis().publish(push_channel(), text)


Send = Callable[[dict[str, Any]], Awaitable[None]]
# Sockets written between two yields to the event loop: a push to thousands of sockets
# must not starve pings, new connections and client frames for its whole duration.
_SENDS_PER_YIELD = 500


class LocalViewers:
    """The open board sockets of this process, by their ASGI `send` callables."""

    def __init__(self) -> None:
        self.sends: dict[int, Send] = {}

    def add(self, key: int, send: Send) -> None:
        self.sends[key] = send

    def discard(self, key: int) -> None:
        self.sends.pop(key, None)

    def __len__(self) -> int:
        return len(self.sends)

    async def deliver(self, text: str) -> int:
        """Write one text frame to every local socket; returns the sockets written."""
        message = {"type": "websocket.send", "text": text}
        written = 0
        for key, send in list(self.sends.items()):
            try:
                # daphne's send never suspends: it hands the frame to the socket's buffer.
                await send(message)
                written += 1
            except Exception:
                # A socket of a loop or server that is gone: forget it, keep the others.
                self.discard(key)
                logger.debug("dropped a viewer whose send failed", exc_info=True)
            if written % _SENDS_PER_YIELD == 0:
                await asyncio.sleep(0)
        return written


viewers = LocalViewers()


def _turn() -> str | None:
    """One broadcaster turn in a thread: compute, and (with Redis) publish, the push."""
    text = tick()
    if text is not None and not settings.EMBEDDED:
        publish(text)
    return text


class Broadcaster:
    """The per-process loop; started by the first consumer that connects."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.task = loop.create_task(self.run())

    async def run(self) -> None:
        interval = settings.LEADERBOARD_BROADCAST_INTERVAL_MS / 1000
        while True:
            await asyncio.sleep(interval)
            try:
                text = await sync_to_async(_turn, thread_sensitive=False)()
                if text is not None and settings.EMBEDDED:
                    await viewers.deliver(text)
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.backing_service_errors.labels("broadcaster").inc()
                logger.exception("broadcast turn failed")
                await asyncio.sleep(min(5.0, interval * 10))


class Subscriber:
    """This process's one subscription to the push channel; delivers to local sockets."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.ready: asyncio.Event | None = None
        self.received = 0  # pushes this process received (tests count them)

    async def ensure_running(self, *, wait: float = 2.0) -> None:
        """Start the subscription in this event loop, and wait until it is listening."""
        if settings.EMBEDDED:
            return
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.ready = asyncio.Event()
            self.task = loop.create_task(self.run(self.ready))
        if self.ready is not None and not self.ready.is_set():
            try:
                await asyncio.wait_for(asyncio.shield(self.ready.wait()), timeout=wait)
            except TimeoutError:
                logger.warning("push subscription not ready after %.1fs; continuing", wait)

    async def run(self, ready: asyncio.Event) -> None:
        import redis.asyncio as aioredis

        while True:
            client = aioredis.Redis.from_url(
                settings.REDIS_URL, socket_connect_timeout=2, health_check_interval=30
            )
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(push_channel())
                    ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self.received += 1
                            await viewers.deliver(message["data"].decode())
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.backing_service_errors.labels("redis").inc()
                logger.warning("push subscription lost; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                await client.aclose()


broadcaster = Broadcaster()
subscriber = Subscriber()
