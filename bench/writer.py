"""Completions with a lean asyncio HTTP/1.1 client, in processes whose CPU is reported.

Each client is one keep-alive connection (raw asyncio streams on uvloop when installed)
that loops: `POST /api/v1/actions/{id}/start/`, then `POST /api/v1/actions/complete/`
with the token it got, over the access tokens it was given (its own users, so per-user
cooldowns and limits are not what is measured; or all on one user for the hot-user
run). Requests are written by hand and responses parsed by hand (status line,
Content-Length or chunked); only the start response's JSON is decoded, for its token.

`run_segment()` spreads the clients over `processes` worker processes (`python -m bench.writer`)
that start together at a fixed wall-clock time, and reports the merged figures with the
workers' CPU in the measured window (1.0 = one core; `wait4()` gives the total with
start-up too).

Each loop is bounded in time (`seconds`) and count (`max_iterations` per client).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class Connection:
    """One HTTP/1.1 keep-alive connection; reconnects when the server closes it."""

    def __init__(self, host: str, port: int, source: str | None = None) -> None:
        self.host, self.port, self.source = host, port, source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.reconnects = 0

    async def _open(self) -> None:
        local = (self.source, 0) if self.source else None
        self.reader, self.writer = await asyncio.open_connection(
            self.host, self.port, local_addr=local
        )
        self.reconnects += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None

    async def request(
        self, method: str, path: str, headers: bytes = b"", body: bytes = b""
    ) -> tuple[int, bytes]:
        if self.writer is None:
            await self._open()
        assert self.reader is not None
        assert self.writer is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Content-Length: {len(body)}\r\n"
        ).encode()
        if body:
            head += b"Content-Type: application/json\r\n"
        self.writer.write(head + headers + b"\r\n" + body)
        try:
            status, payload, keep = await self._response()
        except (asyncio.IncompleteReadError, ConnectionError):
            self.close()
            raise
        if not keep:
            self.close()
        return status, payload

    async def _response(self) -> tuple[int, bytes, bool]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        chunked = False
        keep = True
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                keep = False
        if chunked:
            parts = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await self.reader.readuntil(b"\r\n")
                    break
                parts.append(await self.reader.readexactly(size + 2))
            return status, b"".join(p[:-2] for p in parts), keep
        return status, (await self.reader.readexactly(length) if length else b""), keep


def _auth(token: str) -> bytes:
    return f"Authorization: Bearer {token}\r\nUser-Agent: scoreboard-bench\r\n".encode()


def _count(table: dict[str, int], status: int) -> None:
    key = str(status)
    table[key] = table.get(key, 0) + 1


async def _client(spec: dict[str, Any], tokens: list[str], out: dict[str, Any]) -> None:
    # A player with an address of their own (spec["addresses"], token -> loopback
    # address) connects from it, as players on networks of their own do; the rest share
    # the default one.
    addresses: dict[str, str] = spec.get("addresses") or {}
    conns: dict[str | None, Connection] = {}
    for t in tokens:
        source = addresses.get(t)
        if source not in conns:
            conns[source] = Connection(spec["host"], spec["port"], source)
    users = [(_auth(t), conns[addresses.get(t)]) for t in tokens]
    action = spec["action"]
    start_path = f"/api/v1/actions/{action}/start/"
    deadline = spec["start_at"] + spec["seconds"]
    i = 0
    try:
        while time.time() < deadline and i < spec["max_iterations"]:
            auth, conn = users[i % len(users)]
            i += 1
            t0 = time.perf_counter()
            try:
                if spec["mode"] == "healthz":
                    s1, _ = await conn.request("GET", "/healthz")
                    t1 = time.perf_counter()
                    s2, _ = await conn.request("GET", "/healthz")
                else:
                    s1, body = await conn.request("POST", start_path, auth)
                    t1 = time.perf_counter()
                    if s1 != 201:
                        _count(out["start_statuses"], s1)
                        out["start_ms"].append((t1 - t0) * 1000)
                        continue
                    token = json.loads(body)["actionToken"]
                    payload = json.dumps({"actionId": action, "actionToken": token}).encode()
                    s2, _ = await conn.request("POST", "/api/v1/actions/complete/", auth, payload)
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                out["io_errors"] += 1
                conn.close()
                await asyncio.sleep(0.05)
                continue
            t2 = time.perf_counter()
            _count(out["start_statuses"], s1)
            _count(out["complete_statuses"], s2)
            out["start_ms"].append((t1 - t0) * 1000)
            out["complete_ms"].append((t2 - t1) * 1000)
            out["iteration_ms"].append((t2 - t0) * 1000)
    finally:
        for conn in conns.values():
            out["reconnects"] += max(0, conn.reconnects - 1)
            conn.close()


async def _worker(spec: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start_statuses": {},
        "complete_statuses": {},
        "start_ms": [],
        "complete_ms": [],
        "iteration_ms": [],
        "io_errors": 0,
        "reconnects": 0,
    }
    await asyncio.sleep(max(0.0, spec["start_at"] - time.time()))
    began, cpu = time.time(), time.process_time()
    await asyncio.gather(*(_client(spec, tokens, out) for tokens in spec["clients"]))
    out["wall_seconds"] = time.time() - began
    out["cpu_seconds"] = time.process_time() - cpu  # this process, measured window only
    return out


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="one writer process (see bench.writer)")
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    args = parser.parse_args(argv)
    spec = json.loads(args.spec.read_text())
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # plain asyncio: slower, but the same figures
        runner = asyncio.run
    result = runner(_worker(spec))
    result["loop"] = "uvloop" if runner is not asyncio.run else "asyncio"
    args.out.write_text(json.dumps(result))
    return 0


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def run_segment(
    *,
    host: str,
    port: int,
    action: str,
    clients: list[list[str]],
    seconds: float,
    processes: int = 1,
    mode: str = "complete",
    max_iterations: int = 100_000,
    addresses: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """One run of the clients; what each worker process measured (see `summarize`).
    `addresses`: the loopback address each token's player connects from (default: all
    from the same one)."""
    processes = max(1, min(processes, len(clients)))
    start_at = time.time() + 0.6 + 0.2 * processes  # every worker imported and waiting
    running = []
    with tempfile.TemporaryDirectory(prefix="bench-writer-") as tmp:
        for p in range(processes):
            spec = {
                "host": host,
                "port": port,
                "action": action,
                "mode": mode,
                "clients": clients[p::processes],
                "seconds": seconds,
                "start_at": start_at,
                "max_iterations": max_iterations,
                "addresses": addresses or {},
            }
            spec_path, out_path = Path(tmp) / f"spec{p}.json", Path(tmp) / f"out{p}.json"
            spec_path.write_text(json.dumps(spec))
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.writer", str(spec_path), str(out_path)],
                cwd=ROOT,
            )
            running.append((proc, out_path))
        outs = []
        for proc, out_path in running:
            # wait4: this worker's own CPU (user + system), exact.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if proc.returncode != 0:
                raise RuntimeError(f"writer process exited with {proc.returncode}")
            out = json.loads(out_path.read_text())
            out["cpu_seconds_with_startup"] = usage.ru_utime + usage.ru_stime
            outs.append(out)
    return outs


def summarize(segments: list[list[dict[str, Any]]], *, clients: int, mode: str) -> dict[str, Any]:
    """Merge segments (runs of the same clients, each a list of per-process results)."""
    outs = [out for segment in segments for out in segment]
    processes = max(len(segment) for segment in segments)
    cpu = sum(out["cpu_seconds_with_startup"] for out in outs)
    merged: dict[str, Any] = {"start_statuses": {}, "complete_statuses": {}}
    for key in ("start_statuses", "complete_statuses"):
        for out in outs:
            for status, n in out[key].items():
                merged[key][status] = merged[key].get(status, 0) + n
    start_ms = [v for out in outs for v in out["start_ms"]]
    complete_ms = [v for out in outs for v in out["complete_ms"]]
    iteration_ms = [v for out in outs for v in out["iteration_ms"]]
    # Processes of one segment run side by side; segments one after another.
    wall = sum(max(out["wall_seconds"] for out in segment) for segment in segments)
    accepted = merged["complete_statuses"].get("200", 0)
    return {
        "mode": mode,
        "clients": clients,
        "processes": processes,
        "segments": len(segments),
        "loop": outs[0]["loop"],
        "seconds": round(wall, 2),
        "iterations": len(complete_ms),
        "accepted": accepted,
        "accepted_per_s": round(accepted / wall, 1) if wall else 0.0,
        "iterations_per_s": round(len(complete_ms) / wall, 1) if wall else 0.0,
        "start_p50_ms": _pct(start_ms, 0.50),
        "start_p99_ms": _pct(start_ms, 0.99),
        "complete_p50_ms": _pct(complete_ms, 0.50),
        "complete_p99_ms": _pct(complete_ms, 0.99),
        "iteration_p50_ms": _pct(iteration_ms, 0.50),
        "iteration_p99_ms": _pct(iteration_ms, 0.99),
        **merged,
        "io_errors": sum(out["io_errors"] for out in outs),
        "reconnects": sum(out["reconnects"] for out in outs),
        "generator": f"asyncio HTTP/1.1 client ({outs[0]['loop']}), {processes} process(es)",
        # The workers' CPU in the measured window (1.0 = one core), and per process: one
        # near 1.0 would mean the generator is the bottleneck (add processes).
        "generator_cpu_cores": round(sum(o["cpu_seconds"] for o in outs) / wall, 3),
        "generator_cpu_cores_busiest_process": round(
            max(o["cpu_seconds"] / o["wall_seconds"] for o in outs), 3
        ),
        "generator_cpu_seconds_with_startup": round(cpu, 2),
    }


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(worker_main())
