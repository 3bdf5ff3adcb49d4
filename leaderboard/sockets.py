"""Writing a board's frames to this process's sockets: one pre-encoded WebSocket frame
written straight to each daphne socket's transport (no channel-layer message, no
consumer dispatch per viewer), or through the socket's ASGI `send` elsewhere."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

logger = logging.getLogger(__name__)


Send = Callable[[dict[str, Any]], Awaitable[None]]
# Sockets written between two yields to the event loop: a push to thousands of sockets
# must not starve pings, new connections and client frames for its whole duration.
_SENDS_PER_YIELD = 500


def text_frame(text: str) -> bytes:
    """One unmasked, unfragmented WebSocket text frame (RFC 6455 5.2), as a server sends."""
    payload = text.encode()
    size = len(payload)
    if size < 126:
        header = bytes((0x81, size))
    elif size < 1 << 16:
        header = bytes((0x81, 126)) + size.to_bytes(2, "big")
    else:
        header = bytes((0x81, 127)) + size.to_bytes(8, "big")
    return header + payload


def _daphne_socket(send: Any) -> Any | None:
    """daphne's WebSocket protocol behind its ASGI `send`, or None for any other server.

    daphne hands each connection `functools.partial(Server.handle_reply, protocol)`, and
    `protocol` is an autobahn WebSocketServerProtocol over a Twisted transport. Writing
    the ready-made frame to that transport skips, per socket, the ASGI message, daphne's
    and autobahn's per-message work and autobahn's debug-log formatting: the same bytes
    autobahn would write. Anything else (another server, a test communicator) gets the
    ASGI message.
    """
    protocol = send.args[0] if isinstance(send, functools.partial) and send.args else None
    needed = ("transport", "state", "STATE_OPEN", "send_queue")
    if protocol is None or not all(hasattr(protocol, name) for name in needed):
        return None
    return protocol


def _write_now(transport: Any, frame: bytes, send: Callable[[bytes], int]) -> None:
    """Write `frame` to a Twisted TCP transport: straight to its socket (`send`) when
    nothing is waiting in the transport's buffers, else (or for what the socket did not
    take) through the buffered `write`, so bytes always leave in order.

    Twisted's `write` only buffers and registers the socket for writability; the actual
    send happens in a later callback, which costs two epoll updates and a dispatch per
    socket per push, several times the send itself. A raw asyncio server sends at once;
    this does the same, as Twisted's own `writeSomeData` would (minus its wrappers).
    """
    if transport.offset == len(transport.dataBuffer) and not transport._tempDataLen:
        try:
            sent = send(frame)
        except OSError as error:
            if not isinstance(error, BlockingIOError) and error.errno != errno.ENOBUFS:
                return  # the connection is lost: Twisted's reader sees it and closes it
            sent = 0
        if sent < len(frame):
            transport.write(frame[sent:])
    else:
        transport.write(frame)


def _socket_send(transport: Any) -> Callable[[bytes], int] | None:
    """The socket's `send` of a Twisted TCP transport, or None for any other transport."""
    needed = ("offset", "dataBuffer", "_tempDataLen", "write", "socket")
    if not all(hasattr(transport, name) for name in needed):
        return None
    return getattr(transport.socket, "send", None)


class LocalViewers:
    """The open board sockets of this process: each one's ASGI `send`, and the daphne
    socket to write frames to directly when there is one."""

    def __init__(self) -> None:
        self.sends: dict[int, Send] = {}
        # key -> (daphne's protocol, its transport, the socket's `send` or None)
        self.sockets: dict[int, tuple[Any, Any, Callable[[bytes], int] | None]] = {}
        self.users: dict[str, set[int]] = {}  # user id -> keys of their sockets here
        self.user_of: dict[int, str] = {}

    def add(
        self, key: int, send: Send, server_send: Any = None, user_id: str | None = None
    ) -> None:
        if user_id is not None:
            self.users.setdefault(user_id, set()).add(key)
            self.user_of[key] = user_id
        socket = _daphne_socket(server_send) if server_send is not None else None
        if socket is not None:
            # Twisted leaves Nagle on (asyncio turns it off): a push must leave at once.
            with contextlib.suppress(AttributeError, OSError):
                socket.transport.setTcpNoDelay(True)
            # Looked up once here, not per push: each one counts with thousands of sockets.
            self.sockets[key] = (socket, socket.transport, _socket_send(socket.transport))
        else:
            self.sends[key] = send

    def discard(self, key: int) -> None:
        self.sends.pop(key, None)
        self.sockets.pop(key, None)
        user_id = self.user_of.pop(key, None)
        if user_id is not None:
            keys = self.users.get(user_id)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self.users[user_id]

    def __len__(self) -> int:
        return len(self.sends) + len(self.sockets)

    async def deliver_to_user(self, user_id: str, text: str) -> int:
        """Write one text frame to the sockets of one user in this process."""
        keys = self.users.get(user_id)
        if not keys:
            return 0
        return await self._write([text], list(keys))

    async def deliver(self, *texts: str) -> int:
        """Write these text frames, in order, to every local socket; returns the sockets
        written. Several frames leave in one write per socket."""
        return await self._write(list(texts), None)

    async def _write(self, texts: list[str], only: list[int] | None) -> int:
        written = 0
        frame = b"".join(text_frame(text) for text in texts)
        sockets = (
            list(self.sockets.items())
            if only is None
            else [(k, self.sockets[k]) for k in only if k in self.sockets]
        )
        sends = (
            list(self.sends.items())
            if only is None
            else [(k, self.sends[k]) for k in only if k in self.sends]
        )
        for key, (protocol, transport, send) in sockets:
            # Open and nothing queued in autobahn (daphne never queues): write the bytes
            # in order with anything written before.
            if protocol.state == protocol.STATE_OPEN and not protocol.send_queue:
                if send is not None:
                    _write_now(transport, frame, send)
                else:
                    transport.write(frame)
                written += 1
                if written % _SENDS_PER_YIELD == 0:
                    await asyncio.sleep(0)
            elif protocol.state != protocol.STATE_OPEN:
                self.discard(key)
        messages = [{"type": "websocket.send", "text": text} for text in texts]
        for key, asgi_send in sends:
            try:
                # daphne's send never suspends: it hands the frame to the socket's buffer.
                for message in messages:
                    await asgi_send(message)
                written += 1
            except Exception:
                # A socket of a loop or server that is gone: forget it, keep the others.
                self.discard(key)
                logger.debug("dropped a viewer whose send failed", exc_info=True)
            if written % _SENDS_PER_YIELD == 0:
                await asyncio.sleep(0)
        return written
