"""A small closed-loop load generator: N concurrent clients for a fixed time."""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies: list[float] = field(repr=False, default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    def summary(self) -> dict[str, float | int | str | dict[int, int]]:
        return {
            "name": self.name,
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.percentile(0.50) * 1000, 2),
            "p99_ms": round(self.percentile(0.99) * 1000, 2),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 2) if self.latencies else 0,
            "statuses": self.statuses,
        }


async def closed_loop(
    name: str,
    call: Callable[[int, int], Awaitable[int]],
    *,
    concurrency: int,
    seconds: float,
    ok: Callable[[int], bool] = lambda status: status < 400,
    max_requests: int = 1_000_000,
) -> LoadResult:
    """Run `call(worker, i)` from `concurrency` workers until `seconds` pass; time each call."""
    result = LoadResult(name=name, requests=0, errors=0, seconds=seconds)
    deadline = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        i = 0
        while time.perf_counter() < deadline and result.requests < max_requests:
            start = time.perf_counter()
            try:
                status = await call(w, i)
            except Exception:
                status = 0
            result.latencies.append(time.perf_counter() - start)
            result.requests += 1
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if not ok(status):
                result.errors += 1
            i += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result
