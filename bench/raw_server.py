"""The fan-out baseline: a minimal one-process `websockets` broadcast server.

It does only what the parts underneath the service must do: accept sockets, send each a
snapshot-sized frame, and `rate` times a second encode one update the size of the
service's (top 10 plus a change) and write it to every socket (`websockets.broadcast`).
Each update carries its push time (`t`) and a rising `version`, like the service's.

    python -m bench.raw_server --port 9100 --rate 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import time
import uuid

from websockets.asyncio.server import ServerConnection, broadcast, serve

ENTRIES = [
    {
        "rank": rank,
        "userId": str(uuid.UUID(int=rank)),
        "username": f"fan{rank:05d}",
        "score": 1_000_000 - rank,
    }
    for rank in range(1, 11)
]


def frame(kind: str, version: int, now: float) -> str:
    change = dict(ENTRIES[version % 10], previousRank=1 + (version + 1) % 10)
    body = {"type": kind, "entries": ENTRIES, "t": now}
    if kind == "leaderboard.update":
        body["changes"] = [change]
    body["version"] = version
    return json.dumps(body, separators=(",", ":"))


async def main(port: int, rate: float) -> None:
    clients: set[ServerConnection] = set()
    version = 0

    async def handler(ws: ServerConnection) -> None:
        clients.add(ws)
        try:
            await ws.send(frame("leaderboard.snapshot", version, time.time()))
            await ws.wait_closed()
        finally:
            clients.discard(ws)

    async with serve(handler, "127.0.0.1", port, compression=None, max_queue=None, backlog=4096):
        print("ready", flush=True)
        next_at = time.monotonic()
        while True:
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            version += 1
            broadcast(clients, frame("leaderboard.update", version, time.time()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--rate", type=float, default=5.0)
    args = parser.parse_args()
    with contextlib.suppress(ValueError, OSError):
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.port, args.rate))
