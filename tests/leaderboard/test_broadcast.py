"""Writing pushes to this process's sockets: several pushes waiting leave together."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from leaderboard import broadcast
from leaderboard.broadcast import Subscriber
from leaderboard.sockets import LocalViewers, text_frame


class FakeTransport:
    """The parts of a Twisted TCP transport (and its socket) that `_write_now` uses; records
    each write."""

    def __init__(self, on_write: Any = None) -> None:
        self.offset = 0
        self.dataBuffer = b""
        self._tempDataLen = 0
        self.writes: list[bytes] = []
        self.on_write = on_write

    @property
    def socket(self) -> FakeTransport:  # the transport's socket: its `send` is used
        return self

    def send(self, data: bytes) -> int:
        self.writes.append(data)
        if self.on_write:
            self.on_write()
        return len(data)

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def setTcpNoDelay(self, enabled: bool) -> None:  # noqa: N802 - Twisted's name
        pass


class FakeProtocol:
    """An autobahn/daphne WebSocket protocol, as far as `LocalViewers` looks at it."""

    STATE_OPEN = 1

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport
        self.state = self.STATE_OPEN
        self.send_queue: list[Any] = []


async def _reply(protocol: Any, message: dict[str, Any]) -> None:
    raise AssertionError("a daphne socket is written directly, not through ASGI send")


def _socket(viewers: LocalViewers, key: int, transport: FakeTransport) -> None:
    viewers.add(key, _reply, functools.partial(_reply, FakeProtocol(transport)))


def test_it_writes_several_frames_in_one_write_per_socket() -> None:
    viewers = LocalViewers()
    transports = [FakeTransport() for _ in range(3)]
    for key, transport in enumerate(transports):
        _socket(viewers, key, transport)
    assert asyncio.run(viewers.deliver('{"v":1}', '{"v":2}')) == 3
    for transport in transports:
        assert transport.writes == [text_frame('{"v":1}') + text_frame('{"v":2}')]


def test_it_sends_pushes_that_arrive_during_a_write_together_and_in_order(
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    subscriber = Subscriber()
    viewers = LocalViewers()
    monkeypatch.setattr(broadcast, "viewers", viewers)

    async def scenario() -> list[bytes]:
        has_pending = asyncio.Event()

        def two_more_arrive() -> None:  # as the listener would, while the first is written
            if len(transport.writes) == 1:
                subscriber.pending += ['{"v":2}', '{"v":3}']
                has_pending.set()

        transport = FakeTransport(on_write=two_more_arrive)
        _socket(viewers, 1, transport)
        writer = asyncio.create_task(subscriber.write_pending(has_pending))
        subscriber.pending.append('{"v":1}')
        has_pending.set()
        for _ in range(100):  # bounded: a few loop turns are enough
            await asyncio.sleep(0)
            if len(transport.writes) == 2:
                break
        writer.cancel()
        return transport.writes

    writes = asyncio.run(scenario())
    assert writes == [text_frame('{"v":1}'), text_frame('{"v":2}') + text_frame('{"v":3}')]


def test_it_writes_behind_what_the_transport_still_buffers_and_what_the_socket_left() -> None:
    viewers = LocalViewers()
    behind, partial = FakeTransport(), FakeTransport()
    behind.dataBuffer = b"earlier"  # Twisted still holds bytes: the frame goes after them
    partial.send = lambda data: (partial.writes.append(data[:3]), 3)[1]  # type: ignore[method-assign]
    buffered: dict[int, list[bytes]] = {0: [], 1: []}
    behind.write = buffered[0].append  # type: ignore[method-assign]
    partial.write = buffered[1].append  # type: ignore[method-assign]
    _socket(viewers, 0, behind)
    _socket(viewers, 1, partial)
    asyncio.run(viewers.deliver('{"v":1}'))
    frame = text_frame('{"v":1}')
    assert (behind.writes, buffered[0]) == ([], [frame])
    assert (partial.writes, buffered[1]) == ([frame[:3]], [frame[3:]])
