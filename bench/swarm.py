"""A lean WebSocket viewer swarm: many raw-frame sockets per process, a few processes.

Each viewer is a bare `asyncio.Protocol`: it sends the upgrade request, then parses
server frames by hand (servers do not mask), answers pings, and for each text frame only
finds the trailing `"version":N` and notes the arrival time. One copy of each version's
frame is kept for the analysis. No JSON decoding per frame, no task per socket, so one
process keeps up with thousands of sockets and its own CPU is reported.

The parent drives the workers over a pipe: `connect` -> ("connected", stats), `measure`,
`stop` -> ("results", ...), then `close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import os
import resource
import time
from array import array
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

VERSION_KEY = b'"version":'
UPDATE_PREFIXES = (b'{"type":"leaderboard.update"', b'{"type": "leaderboard.update"')
SNAPSHOT_PREFIXES = (b'{"type":"leaderboard.snapshot"', b'{"type": "leaderboard.snapshot"')


@dataclass
class Target:
    host: str
    port: int
    path: str = "/ws/leaderboard/"
    source_ips: tuple[str, ...] = ("127.0.0.1",)


def _version(payload: bytes) -> int | None:
    at = payload.rfind(VERSION_KEY)
    if at < 0:
        return None
    end = start = at + len(VERSION_KEY)
    while end < len(payload) and 48 <= payload[end] <= 57:
        end += 1
    return int(payload[start:end]) if end > start else None


@dataclass
class SwarmState:
    count: int
    times: dict[int, array] = field(default_factory=dict)  # version -> arrival per socket
    samples: dict[int, bytes] = field(default_factory=dict)  # version -> one copy
    ready: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    closed: int = 0
    frames: int = 0
    ready_event: asyncio.Event | None = None
    transports: list[Any] = field(default_factory=list)

    def arrival(self, version: int, index: int, now: float, payload: bytes) -> None:
        row = self.times.get(version)
        if row is None:
            row = self.times[version] = array("d", [math.nan]) * self.count
            self.samples[version] = payload
        if math.isnan(row[index]):
            row[index] = now

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1
        self._settled()

    def _settled(self) -> None:
        if self.ready_event and self.ready + sum(self.refused.values()) >= self.count:
            self.ready_event.set()


class Viewer(asyncio.Protocol):
    """One socket: handshake, then frames; notes each update's version and arrival."""

    def __init__(self, state: SwarmState, index: int, request: bytes) -> None:
        self.state = state
        self.index = index
        self.request = request
        self.buffer = bytearray()
        self.upgraded = False
        self.got_snapshot = False
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def _settle(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.state.transports.append(transport)
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if self.got_snapshot:
            self.state.closed += 1
        elif not self.done.done():
            self.state.refuse("closed before snapshot")
        self._settle()

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.upgraded:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[9:12])
            if status != b"101":
                self.state.refuse(f"http {status.decode(errors='replace')}")
                self._settle()
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = True
            del buffer[: end + 4]
        now = time.time()
        while len(buffer) >= 2:
            length = buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length = int.from_bytes(buffer[2:4], "big")
                offset = 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length = int.from_bytes(buffer[2:10], "big")
                offset = 10
            if len(buffer) < offset + length:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            self.state.frames += 1
            if opcode == 1:
                self.on_text(payload, now)
            elif opcode == 9:  # ping: a masked pong with a zero key echoes the payload
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload)  # type: ignore[union-attr]

    def on_text(self, payload: bytes, now: float) -> None:
        if payload.startswith(UPDATE_PREFIXES):
            version = _version(payload)
            if version is not None:
                self.state.arrival(version, self.index, now, payload)
        elif not self.got_snapshot and payload.startswith(SNAPSHOT_PREFIXES):
            self.got_snapshot = True
            self.state.ready += 1
            self.state._settled()
            self._settle()


def _request(target: Target) -> bytes:
    origin = f"http://127.0.0.1:{target.port}"
    return (
        f"GET {target.path} HTTP/1.1\r\nHost: 127.0.0.1:{target.port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {origin}\r\n\r\n"
    ).encode()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _connect_all(
    state: SwarmState, target: Target, *, parallel: int, timeout: float
) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    request = _request(target)
    gate = asyncio.Semaphore(parallel)
    state.ready_event = asyncio.Event()
    started = time.perf_counter()

    async def one(index: int) -> None:
        async with gate:
            source = target.source_ips[index % len(target.source_ips)]
            try:
                _, viewer = await asyncio.wait_for(
                    loop.create_connection(
                        lambda: Viewer(state, index, request),
                        target.host,
                        target.port,
                        local_addr=(source, 0),
                    ),
                    timeout=30,
                )
            except (OSError, TimeoutError) as error:
                state.refuse(f"connect {type(error).__name__}")
                return
            # Hold the slot until this socket has its snapshot: bounded handshakes in flight.
            try:
                await asyncio.wait_for(asyncio.shield(viewer.done), timeout=30)
            except TimeoutError:
                state.refuse("no snapshot in 30s")

    connecting = [asyncio.create_task(one(i)) for i in range(state.count)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(state.ready_event.wait(), timeout=timeout)
    for task in connecting:
        task.cancel()
    return {
        "ready": state.ready,
        "refused": dict(state.refused),
        "connect_seconds": round(time.perf_counter() - started, 1),
    }


def worker_main(
    conn: Connection, target: Target, count: int, parallel: int, timeout: float
) -> None:
    """One swarm process: `count` viewers of `target`, driven by `conn`."""
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    state = SwarmState(count=count)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[Any] = asyncio.Queue()
        loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))
        mark = (0.0, 0.0)
        while True:
            command = await commands.get()
            if command == "connect":
                stats = await _connect_all(state, target, parallel=parallel, timeout=timeout)
                conn.send(("connected", stats))
            elif command == "measure":
                state.times.clear()
                state.samples.clear()
                mark = (time.perf_counter(), _cpu_seconds())
            elif command == "stop":
                wall = time.perf_counter() - mark[0]
                cpu = _cpu_seconds() - mark[1]
                conn.send(
                    (
                        "results",
                        {
                            "times": dict(state.times),
                            "samples": state.samples,
                            "cpu_seconds": cpu,
                            "wall_seconds": wall,
                            "closed_during_run": state.closed,
                            "pid": os.getpid(),
                        },
                    )
                )
            elif command == "close":
                for transport in state.transports:
                    transport.abort()
                await asyncio.sleep(0.2)
                conn.send(("closed", None))
                return

    asyncio.run(main())


class Swarm:
    """`viewers` sockets spread over `processes` worker processes."""

    def __init__(
        self,
        target: Target,
        viewers: int,
        *,
        processes: int = 2,
        parallel: int = 100,
        timeout: float = 120.0,
    ) -> None:
        context = multiprocessing.get_context("spawn")
        self.workers: list[tuple[Any, Connection, int]] = []
        per = [
            viewers // processes + (1 if i < viewers % processes else 0) for i in range(processes)
        ]
        for count in per:
            if count == 0:
                continue
            parent, child = context.Pipe()
            proc = context.Process(
                target=worker_main, args=(child, target, count, parallel, timeout), daemon=True
            )
            proc.start()
            self.workers.append((proc, parent, count))

    def _all(self, command: str, timeout: float) -> list[Any]:
        for _, conn, _ in self.workers:
            conn.send(command)
        replies = []
        for _, conn, _ in self.workers:
            if not conn.poll(timeout):
                raise TimeoutError(f"swarm worker did not answer {command!r} in {timeout}s")
            replies.append(conn.recv()[1])
        return replies

    def connect(self, timeout: float = 180.0) -> dict[str, Any]:
        replies = self._all("connect", timeout)
        refused: dict[str, int] = {}
        for reply in replies:
            for reason, n in reply["refused"].items():
                refused[reason] = refused.get(reason, 0) + n
        return {
            "ready": sum(r["ready"] for r in replies),
            "refused": refused,
            "connect_seconds": max(r["connect_seconds"] for r in replies),
        }

    def measure(self) -> None:
        for _, conn, _ in self.workers:
            conn.send("measure")

    def stop(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Per worker: arrivals by version (one float per socket, NaN if missed), CPU."""
        results = self._all("stop", timeout)
        for result, (_, _, count) in zip(results, self.workers, strict=True):
            result["count"] = count
        return results

    def close(self) -> None:
        with contextlib.suppress(TimeoutError, OSError, EOFError):
            self._all("close", 30)
        for proc, conn, _ in self.workers:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
            conn.close()
        self.workers.clear()
