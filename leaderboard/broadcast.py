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
per user) takes the same path on a channel of its own: one PUBLISH by the writer, and
each subscriber writes it to that user's local sockets.

In the embedded default (no Redis, one process) the broadcaster hands the frame to the
local sockets itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import Any

import redis
from asgiref.sync import sync_to_async
from django.conf import settings

from core import metrics, redis_pool
from core.redis_scripts import redis_script
from leaderboard import events
from leaderboard.board_broadcast import board_broadcaster
from leaderboard.bus import (
    bus_keys,
    bus_redis,
    dirty_channel,
    local_state,
    me_channel,
    push_channel,
    register_waker,
)
from leaderboard.index import IndexColdError, RedisIndex
from leaderboard.selectors import leaderboard_top
from leaderboard.sockets import LocalViewers

logger = logging.getLogger(__name__)


_SEEDED = """
local function seeded(pv_key, run_key)
  local server = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
  local pv = tonumber(redis.call('GET', pv_key) or '0')
  if redis.call('GET', run_key) ~= server then
    local t = redis.call('TIME')
    pv = math.max(pv, tonumber(t[1]) * 1000000 + tonumber(t[2]))
    redis.call('SET', pv_key, string.format('%.0f', pv))
    redis.call('SET', run_key, server)
  end
  return pv
end
"""

# The version of the last push (KEYS: pv, pvrun).
PUSH_VERSION = _SEEDED + "return string.format('%.0f', seeded(KEYS[1], KEYS[2]))"

# A push: the next version, stored with the top it pushes (the snapshot's pair) and the
# lock kept for the interval (KEYS: pv, pvrun, last, tick; ARGV: top JSON, interval ms).
PUSH = (
    _SEEDED
    + """
local pv = string.format('%.0f', seeded(KEYS[1], KEYS[2]) + 1)
redis.call('SET', KEYS[1], pv)
redis.call('SET', KEYS[3], ARGV[1])
redis.call('SET', KEYS[4], 'push', 'PX', ARGV[2])
return pv
"""
)

# The last push's version and top, unless Redis is not the one that counted them (KEYS:
# pv, last, pvrun): then the caller reads the board, and PUSH_VERSION starts the count
# again above it.
LAST_PUSH = """
local server = string.match(redis.call('INFO', 'server'), 'run_id:(%w+)')
if redis.call('GET', KEYS[3]) ~= server then return false end
return redis.call('MGET', KEYS[1], KEYS[2])
"""


async def last_push_snapshot() -> str | None:
    """The `leaderboard.snapshot` text as of the last push, read on the event loop in one
    Redis call (no thread hop), or None when there is none to give (embedded default, no
    push yet, this process's subscription down, Redis failing): the caller then reads
    the board itself.

    The last push's version and top are written together (one script in `_tick`), so the
    pair is consistent; a change not pushed yet arrives as the next update.
    """
    client = subscriber.reader
    if client is None:
        return None
    keys = bus_keys()
    try:
        found = await redis_script(client, LAST_PUSH)(
            keys=[keys["pv"], keys["last"], keys["pvrun"]]
        )
    except redis_pool.RedisUnavailable:
        return None  # the breaker logged and counted the failure that opened it
    except Exception:
        metrics.backing_service_errors.labels("redis").inc()
        logger.warning("could not read the last push for a snapshot", exc_info=True)
        return None
    if not found:
        return None
    version, top = found
    if version is None or top is None:
        return None
    return events.snapshot_from_raw(top.decode(), int(version))


def push_version() -> int:
    """The version of the last push: a client that sees a gap after it asks for a snapshot.
    0 when Redis fails: the board is still read (from PostgreSQL), and the first push
    after Redis returns shows a gap, which makes the client resync."""
    if settings.EMBEDDED:
        return local_state.version
    keys = bus_keys()
    try:
        return int(redis_script(bus_redis(), PUSH_VERSION)(keys=[keys["pv"], keys["pvrun"]]))
    except redis.exceptions.RedisError:
        metrics.backing_service_errors.labels("redis").inc()
        logger.warning("could not read the push version for a snapshot; sending 0")
        return 0


def tick() -> str | None:
    """One broadcaster turn: the encoded update to push, or None. Runs in a thread."""
    return _tick()[0]


# A turn that finds the lock held by another process's idle look (not by a push) retries
# this soon; one blocked by a push retries when that push's interval ends.
_RETRY_AFTER_LOOK = 0.005


def _tick() -> tuple[str | None, float]:
    """(the encoded update to push or None, seconds after which a blocked turn may retry).

    At most one push per interval in the whole deployment: the lock `tick` is taken with
    `SET NX` to look at the board, kept for the interval (value `push`) only when the turn
    pushes, and released at once otherwise, so a wake-up right after an idle look is not
    held back by it.
    """
    interval_ms = settings.LEADERBOARD_BROADCAST_INTERVAL_MS
    if settings.EMBEDDED:
        with local_state.lock:
            wait = local_state.last_push + interval_ms / 1000 - time.monotonic()
            if wait > 0:
                return None, wait
            since, local_state.dirty_since = local_state.dirty_since, None
        if since is None:
            return None, 0.0
        top = leaderboard_top(n=settings.LEADERBOARD_TOP_N)
        if top == local_state.last_top:
            return None, 0.0
        changes = events.top_changes(top, local_state.last_top)
        local_state.version += 1
        local_state.last_top = top
        local_state.last_push = time.monotonic()
        version = local_state.version
    else:
        client, keys = bus_redis(), bus_keys()
        if not client.set(keys["tick"], "look", nx=True, px=interval_ms):
            pipe = client.pipeline(transaction=False)
            pipe.get(keys["tick"])
            pipe.pttl(keys["tick"])
            holder, ttl_ms = pipe.execute()
            if holder == b"push" and ttl_ms and ttl_ms > 0:
                return None, ttl_ms / 1000
            return None, _RETRY_AFTER_LOOK
        since = RedisIndex().take_dirty()
        if since is None:
            client.delete(keys["tick"])
            return None, 0.0
        try:
            top = leaderboard_top(n=settings.LEADERBOARD_TOP_N, index_only=True)
        except IndexColdError:
            # Never push a partial board; the rebuild marks the board dirty when it lands.
            client.delete(keys["tick"])
            return None, 0.0
        raw_last = client.get(keys["last"])
        previous = json.loads(raw_last) if raw_last else []
        if top == previous:
            client.delete(keys["tick"])
            return None, 0.0
        changes = events.top_changes(top, previous)
        version = int(
            redis_script(client, PUSH)(
                keys=[keys["pv"], keys["pvrun"], keys["last"], keys["tick"]],
                args=[json.dumps(top, separators=(",", ":")), interval_ms],
            )
        )
    metrics.broadcast_lag.observe(max(0.0, time.time() - since))
    return events.encode_update(top, changes, version), 0.0


def publish(text: str) -> None:
    """Hand one encoded push to every process's subscriber (one PUBLISH). Runs in a thread."""
    bus_redis().publish(push_channel(), text)


viewers = LocalViewers()


def _turn() -> tuple[str | None, float]:
    """One broadcaster turn in a thread: compute, and (with Redis) publish, the push."""
    text, retry = _tick()
    if text is not None and not settings.EMBEDDED:
        publish(text)
    return text, retry


# The fallback poll. Every change PUBLISHes a wake-up and a turn blocked by a push retries
# when the push's interval ends, so the poll only catches a wake-up lost while a
# subscription reconnects. Each turn is a thread hop and a few Redis calls in every
# process, so it is not run every interval.
_POLL_SECONDS = 1.0


class Broadcaster:
    """The per-process loop; started by the first consumer that connects.

    A turn runs when a wake-up arrives (a change was committed), when a turn blocked by
    the interval may retry, and at least once per `_POLL_SECONDS` (the poll that catches
    a lost wake-up).
    """

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.woken: asyncio.Event | None = None

    def ensure_running(self) -> None:
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.woken = asyncio.Event()
            self.task = loop.create_task(self.run(self.woken))

    def wake(self) -> None:
        """Run a turn now (from the event loop)."""
        if self.woken is not None:
            self.woken.set()

    def wake_threadsafe(self) -> None:
        """Run a turn now (from any thread; the embedded default's request threads)."""
        task, woken = self.task, self.woken
        if task is not None and woken is not None and not task.done():
            with contextlib.suppress(RuntimeError):  # that loop has closed
                task.get_loop().call_soon_threadsafe(woken.set)

    async def run(self, woken: asyncio.Event) -> None:
        interval = settings.LEADERBOARD_BROADCAST_INTERVAL_MS / 1000
        delay = interval
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=delay)
            woken.clear()
            try:
                text, retry = await sync_to_async(_turn, thread_sensitive=False)()
                if text is not None and settings.EMBEDDED:
                    await viewers.deliver(text)
                delay = min(retry, interval) if retry > 0 else _POLL_SECONDS
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.backing_service_errors.labels("broadcaster").inc()
                logger.exception("broadcast turn failed")
                delay = min(5.0, interval * 10)


_LOOP_CONNECT_TIMEOUT = 2.0


class Subscriber:
    """This process's one subscription to the push channel; delivers to local sockets."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.ready: asyncio.Event | None = None
        self.received = 0  # pushes this process received (tests count them)
        # Pushes received and not yet written to this process's sockets, oldest first.
        self.pending: list[str] = []
        self.has_pending: asyncio.Event | None = None
        # A plain client for snapshots on the event loop, while the subscription is up.
        self.reader: Any = None

    async def ensure_running(self, *, wait: float = 2.0) -> None:
        """Start the subscription in this event loop, and wait until it is listening."""
        if settings.EMBEDDED:
            return
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.reader = None  # a client of the previous loop, if any, is of no use here
            self.ready = asyncio.Event()
            self.task = loop.create_task(self.run(self.ready))
        if self.ready is not None and not self.ready.is_set():
            try:
                await asyncio.wait_for(asyncio.shield(self.ready.wait()), timeout=wait)
            except TimeoutError:
                logger.warning("push subscription not ready after %.1fs; continuing", wait)

    async def run(self, ready: asyncio.Event) -> None:
        self.pending = []  # left by a subscription of a closed loop (tests), if any
        has_pending = self.has_pending = asyncio.Event()
        writer = asyncio.get_running_loop().create_task(self.write_pending(has_pending))
        try:
            await self.listen(ready, has_pending)
        finally:
            writer.cancel()

    async def write_pending(self, has_pending: asyncio.Event) -> None:
        """Write the pushes received to this process's sockets, all that are waiting in
        one go: while a push to thousands of sockets is being written, the next ones
        queue up, and they then leave together, in order, in one write per socket."""
        while True:
            await has_pending.wait()
            has_pending.clear()
            texts, self.pending = self.pending, []
            if texts:
                try:
                    await viewers.deliver(*texts)
                except Exception:
                    metrics.backing_service_errors.labels("broadcaster").inc()
                    logger.exception("writing a push to the local sockets failed")

    async def listen(self, ready: asyncio.Event, has_pending: asyncio.Event) -> None:
        while True:
            # The subscription waits for messages without a read timeout. Connect timeouts
            # here are measured on an event loop that a burst of connects keeps busy for
            # longer than REDIS_SOCKET_TIMEOUT: a connect that finished in the kernel would
            # time out (and open the breaker) before the loop saw it.
            client = redis_pool.async_client(
                socket_connect_timeout=_LOOP_CONNECT_TIMEOUT, health_check_interval=30
            )
            # Snapshots (consumers.snapshot shares one read among the sockets connecting
            # together) on a bounded pool that makes a caller wait for a connection.
            reader = redis_pool.async_client(
                socket_connect_timeout=_LOOP_CONNECT_TIMEOUT,
                socket_timeout=settings.REDIS_SOCKET_TIMEOUT,
            )
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    pushes, wakes = push_channel().encode(), dirty_channel().encode()
                    mine = me_channel().encode()
                    await pubsub.subscribe(pushes, wakes, mine)
                    self.reader = reader
                    ready.set()
                    async for message in pubsub.listen():
                        if message.get("type") != "message":
                            continue
                        if message["channel"] == wakes:
                            broadcaster.wake()
                            board_broadcaster.wake()
                        elif message["channel"] == pushes:
                            self.received += 1
                            self.pending.append(message["data"].decode())
                            has_pending.set()
                        elif message["channel"] == mine:
                            user_id, _, text = message["data"].decode().partition("\n")
                            await viewers.deliver_to_user(user_id, text)
                            await board_broadcaster.deliver_to_user(user_id, text)
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.backing_service_errors.labels("redis").inc()
                logger.warning("push subscription lost; resubscribing", exc_info=True)
                await asyncio.sleep(1.0)
            finally:
                self.reader = None
                await reader.aclose()
                await client.aclose()


broadcaster = Broadcaster()
register_waker(broadcaster.wake_threadsafe)
register_waker(board_broadcaster.wake_threadsafe)
subscriber = Subscriber()
