"""The live board over WebSocket: `/ws/leaderboard/`."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings

from accounts.websocket import AUTH_CLOSE_CODE
from core import metrics
from core.parsers import JSONDocumentError, json_loads
from leaderboard import broadcast, bus, events
from leaderboard.selectors import leaderboard_top

MAX_FRAME_BYTES = 4096
FLOOD_MESSAGES = 20
FLOOD_SECONDS = 5.0
# Application close codes (daphne sends only 1000 or 3000-4999 from an application).
CLOSE_TOO_BIG = 4009
CLOSE_POLICY = 4008
# The server's own `send` for this socket, set by config.asgi before any middleware wraps
# it: the broadcaster writes board updates through it (leaderboard.sockets.LocalViewers).
SERVER_SEND = "scoreboard.server_send"


def _snapshot() -> str:
    version = broadcast.push_version()
    entries = leaderboard_top(n=settings.LEADERBOARD_TOP_N)
    return events.encode_snapshot(entries, version)


async def _read_snapshot() -> str:
    return await broadcast.last_push_snapshot() or await database_sync_to_async(_snapshot)()


class SharedRead:
    """One read of the snapshot for all the sockets that ask for it before it starts.

    A burst of connects would otherwise make one Redis call (or, with Redis failing, one
    PostgreSQL read in a thread) per socket at the same moment: hundreds of connections
    out of the pools at once. Callers that arrive while no read has started join the
    next one; a read that has started is not joined, so every caller gets a board read
    after it joined the viewers (no push between the two is missed).
    """

    def __init__(self, read: Callable[[], Awaitable[str]]) -> None:
        self.read = read
        self.next: asyncio.Future[str] | None = None
        self.running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references

    async def __call__(self) -> str:
        loop = asyncio.get_running_loop()
        future = self.next
        if future is None or future.get_loop() is not loop:
            future = self.next = loop.create_future()
            # No caller may be left to retrieve a failure (they were all cancelled).
            future.add_done_callback(lambda done: done.cancelled() or done.exception())
            task = loop.create_task(self._run(future))
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        return await asyncio.shield(future)

    async def _run(self, future: asyncio.Future[str]) -> None:
        if self.next is future:
            self.next = None  # from here on, callers wait for the next read
        try:
            future.set_result(await self.read())
        except Exception as error:
            future.set_exception(error)


# The snapshot for a connect or a resync: the last push's, read on the event loop, or
# else (no push yet, embedded default, Redis failing) the board read in a thread.
snapshot = SharedRead(_read_snapshot)


class LeaderboardConsumer(AsyncWebsocketConsumer):
    """Snapshot on connect and on request; coalesced updates; the viewer's own score.

    Board updates do not travel through the channel layer: the socket's `send` joins this
    process's `broadcast.viewers`, which writes each push to it directly. Only an
    authenticated viewer needs a channel (for its `me.update`); an anonymous one gets
    none, which spares a Redis subscription and a waiting task per socket.
    """

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        user = scope.get("user")
        if not settings.EMBEDDED or not (user and user.is_authenticated):
            # With Redis, `me.update` too arrives through this process's subscriber; only
            # the embedded default's in-memory layer carries it to a consumer.
            self.channel_layer_alias = None
        try:
            if self.channel_layer_alias is None:
                await self._serve(scope, receive, send)
            else:
                await super().__call__(scope, receive, send)
        finally:
            self.leave()

    async def _serve(self, scope: Any, receive: Any, send: Any) -> None:
        """`AsyncConsumer.__call__` for a socket without a channel: one loop over the
        socket's own messages, without a task and an `asyncio.wait` per message (each
        idle viewer holds only this coroutine)."""
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Channels' dispatch without its `aclose_old_connections` thread hop per message:
        nothing here touches the database on the event loop; the one read that may
        (a snapshot from PostgreSQL) runs in `database_sync_to_async`, which cleans up."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.accepted = False
        self.recent: deque[float] = deque(maxlen=FLOOD_MESSAGES)
        self.user_group: str | None = None
        await self.accept(subprotocol=self.scope.get("accepted_subprotocol"))
        user = self.scope.get("user")
        authenticated = bool(user and user.is_authenticated)
        if self.scope.get("auth_error") or (
            settings.LEADERBOARD_WS_REQUIRE_LOGIN and not authenticated
        ):
            await self.close(code=AUTH_CLOSE_CODE)
            return
        self.accepted = True
        metrics.websocket_connections.inc()
        metrics.websocket_opens.inc()
        if authenticated and self.channel_layer is not None:
            self.user_group = bus.user_group(user.pk)
            await self.channel_layer.group_add(self.user_group, self.channel_name)
        await broadcast.subscriber.ensure_running()
        await self.join(user_id=str(user.pk) if authenticated else None)

    async def join(self, *, user_id: str | None) -> None:
        """Join this process's viewers of the board and send its snapshot."""
        broadcast.broadcaster.ensure_running()
        broadcast.viewers.add(
            id(self), self.base_send, self.scope.get(SERVER_SEND), user_id=user_id
        )
        await self.send(text_data=await snapshot())

    def leave(self) -> None:
        broadcast.viewers.discard(id(self))

    async def snapshot(self) -> str:
        return await snapshot()

    async def disconnect(self, code: int) -> None:
        if not self.accepted:
            return
        metrics.websocket_connections.dec()
        metrics.websocket_closes.labels("client", str(code)).inc()
        self.leave()
        if self.user_group and self.channel_layer is not None:
            await self.channel_layer.group_discard(self.user_group, self.channel_name)

    async def _refuse(self, code: int) -> None:
        metrics.websocket_closes.labels("server", str(code)).inc()
        await self.close(code=code)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Client frames: `ping`, `resync`; anything else gets an error frame."""
        size = (
            len(text_data.encode(errors="surrogatepass"))
            if text_data is not None
            else len(bytes_data or b"")
        )
        if size > MAX_FRAME_BYTES:
            await self._refuse(CLOSE_TOO_BIG)
            return
        now = time.monotonic()
        self.recent.append(now)
        if len(self.recent) == FLOOD_MESSAGES and now - self.recent[0] < FLOOD_SECONDS:
            await self._refuse(CLOSE_POLICY)
            return
        if text_data is None:
            await self._error("unsupported_frame", "Send JSON text frames.")
            return
        try:
            message: Any = json_loads(text_data)
        except JSONDocumentError as error:
            await self._error("invalid_json", f"The frame is not valid JSON: {error}")
            return
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.send(text_data=events.PONG)
        elif kind == "resync":
            await self.send(text_data=await self.snapshot())
        else:
            await self._error("unknown_type", "Known types: ping, resync.")

    async def _error(self, code: str, message: str) -> None:
        await self.send(text_data=events.encode_error(code, message))

    async def me_update(self, event: dict[str, Any]) -> None:
        """The viewer's own score changed."""
        await self.send(
            text_data=events.encode_me_update(event["score"], event["rank"], event.get("boards"))
        )
