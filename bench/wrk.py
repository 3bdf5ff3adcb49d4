"""Reads with `wrk`: one run per segment, a Lua `done()` that prints JSON, merged segments.

wrk (C, epoll, one thread here) drives `--concurrency` keep-alive connections. Each run
loads a Lua script written for it: `request()` rotates over the paths (or the
Authorization headers) it is given, `response()` counts statuses per thread, and `done()`
prints one JSON line: requests, duration, socket errors, statuses and the latency
quantile function on a fixed grid (to p99.98; the maximum closes it). wrk 4.1's Lua
cannot read its latency histogram directly, so segments are merged through their
quantile functions (each grid step weighs its share of the segment's requests): exact
enough at p50 and p99 with the grid's 0.02-point steps above p98.

The generator's CPU is wrk's own: user + system seconds from `wait4()` of the wrk
process, over the run's wall time (1.0 = one core).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MARKER = "WRK_RESULT "
# Quantile grid (percent): coarse up to p98, fine in the tail.
GRID = [round(0.5 * i, 2) for i in range(1, 197)] + [round(98 + 0.02 * i, 2) for i in range(1, 100)]

_LUA = r"""
local paths = {%(paths)s}
local headers = {%(headers)s}
local method = "%(method)s"
local header = "%(header)s"
local threads = {}
local counter = 0

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  statuses = {}
  counter = math.random(1, 1000003)
end

function request()
  counter = counter + 1
  local path = paths[(counter %% #paths) + 1]
  local extra = {}
  if #headers > 0 then
    extra[header] = headers[(counter %% #headers) + 1]
  end
  return wrk.format(method, path, extra)
end

function response(status, hdrs, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local grid = {%(grid)s}
  local q = {}
  if summary.requests > 0 then
    for i, p in ipairs(grid) do
      q[#q + 1] = tostring(latency:percentile(p))
    end
  end
  local merged = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    for k, v in pairs(s) do
      merged[k] = (merged[k] or 0) + v
    end
  end
  local parts = {}
  for k, v in pairs(merged) do
    parts[#parts + 1] = string.format('"%%d": %%d', k, v)
  end
  local e = summary.errors
  io.write(string.format(
    '%(marker)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"socket_errors": {"connect": %%d, "read": %%d, "write": %%d, "timeout": %%d}, ' ..
    '"statuses": {%%s}, "min_us": %%d, "max_us": %%d, "q_us": [%%s]}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.timeout,
    table.concat(parts, ", "), latency.min, latency.max, table.concat(q, ", ")))
end
"""


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk; make bench does)")
    return found


def _lua_strings(values: list[str]) -> str:
    return ", ".join(json.dumps(v) for v in values)  # JSON strings are valid Lua strings here


def lua_script(
    paths: list[str], authorizations: list[str] | None = None, header: str = "Authorization"
) -> str:
    """`authorizations`: values of `header` rotated over (default: Authorization)."""
    return _LUA % {
        "paths": _lua_strings(paths),
        "headers": _lua_strings(authorizations or []),
        "header": header,
        "method": "GET",
        "grid": ", ".join(str(p) for p in GRID),
        "marker": MARKER,
    }


@dataclass
class Segment:
    """One wrk run: what `done()` printed, plus the wall time and wrk's CPU."""

    name: str
    requests: int
    duration: float
    statuses: dict[str, int]
    socket_errors: dict[str, int]
    quantiles_us: list[float]
    max_us: float
    cpu_seconds: float
    wall_seconds: float


def run(
    url: str,
    paths: list[str],
    *,
    name: str,
    seconds: int,
    connections: int,
    authorizations: list[str] | None = None,
    threads: int = 1,
    header: str = "Authorization",
) -> Segment:
    """One wrk run of `seconds` against `url` + the rotating `paths`, sending `header`
    with the `authorizations` values rotated over (an If-None-Match for the 304 path)."""
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "script.lua"
        script.write_text(lua_script(paths, authorizations, header))
        argv = [
            wrk_binary(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, int(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url + paths[0],
        ]
        out_path = Path(tmp) / "out.txt"
        with out_path.open("wb") as out:
            started = time.perf_counter()
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
            # wait4 gives this child's own rusage: wrk's CPU, nobody else's.
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            wall = time.perf_counter() - started
        text = out_path.read_text(errors="replace")
    line = next((ln for ln in text.splitlines() if ln.startswith(MARKER)), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{text[-2000:]}")
    data = json.loads(line[len(MARKER) :])
    return Segment(
        name=name,
        requests=data["requests"],
        duration=data["duration_us"] / 1e6,
        statuses={str(k): v for k, v in data["statuses"].items()},
        socket_errors=data["socket_errors"],
        quantiles_us=[float(v) for v in data["q_us"]],
        max_us=float(data["max_us"]),
        cpu_seconds=usage.ru_utime + usage.ru_stime,
        wall_seconds=wall,
    )


@dataclass
class Merged:
    name: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(s.requests for s in self.segments)

    @property
    def seconds(self) -> float:
        return sum(s.duration for s in self.segments)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile_ms(self, p: float) -> float | None:
        """The merged latency percentile `p` (0-100) in ms, from the segments' grids."""
        points: list[tuple[float, float]] = []
        for seg in self.segments:
            if not seg.requests or not seg.quantiles_us:
                continue
            previous = 0.0
            for grid_p, value in zip(GRID, seg.quantiles_us, strict=True):
                points.append((value, seg.requests * (grid_p - previous) / 100))
                previous = grid_p
            points.append((seg.max_us, seg.requests * (100 - previous) / 100))
        if not points:
            return None
        points.sort()
        total = sum(w for _, w in points)
        running = 0.0
        for value, weight in points:
            running += weight
            if running >= total * p / 100 - 1e-9:
                return round(value / 1000, 2)
        return round(points[-1][0] / 1000, 2)

    def summary(self) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        errors: dict[str, int] = {}
        for seg in self.segments:
            for k, v in seg.statuses.items():
                statuses[k] = statuses.get(k, 0) + v
            for k, v in seg.socket_errors.items():
                errors[k] = errors.get(k, 0) + v
        non_2xx = sum(v for k, v in statuses.items() if not 200 <= int(k) < 300)
        cpu = sum(s.cpu_seconds for s in self.segments)
        wall = sum(s.wall_seconds for s in self.segments)
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "rps": round(self.rps, 1),
            "p50_ms": self.percentile_ms(50),
            "p99_ms": self.percentile_ms(99),
            "max_ms": round(max(s.max_us for s in self.segments) / 1000, 1),
            "statuses": statuses,
            "non_2xx": non_2xx,
            "socket_errors": errors,
            "segments": len(self.segments),
            "generator": "wrk",
            "generator_cpu_cores": round(cpu / wall, 3) if wall else None,
        }
