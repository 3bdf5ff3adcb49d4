"""`--profile DIR`: py-spy records the stack's processes while each scenario runs.

One `py-spy record --subprocesses` per server process (a gunicorn master records its
workers, a Celery worker its pool), stopped with SIGINT when the scenario ends. Each
writes DIR/<scenario>-<process>.txt in py-spy's raw (collapsed stacks) format, readable
by speedscope or flamegraph.pl, and DIR/<scenario>-<process>.top.txt: the functions
with the most samples, on their own (self) and with what they call (inclusive).

A sample is taken of every thread that is not idle, so a thread waiting for a socket's
reply or for the GIL is counted where it waits; `BENCH_PROFILE_GIL=1` samples only the
thread holding the GIL (Python's own CPU, without the system calls it makes).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from deploy.stack import Stack

RATE = 200  # samples a second per process
PROFILED = ("gunicorn", "daphne", "celery")


def _py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(__file__).resolve().parents[1] / ".venv/bin/py-spy")
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed (it is in the dev dependencies)")
    return found


@contextlib.contextmanager
def recording(stack: Stack, directory: Path | None, scenario: str) -> Iterator[None]:
    """Record every profiled process of the stack while the block runs (no-op if None)."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    spies: list[tuple[subprocess.Popen[bytes], Path]] = []
    for proc in stack.processes:
        if not proc.name.startswith(PROFILED) or not proc.alive() or proc.popen is None:
            continue
        out = directory / f"{scenario}-{proc.name}.txt"
        argv = [_py_spy(), "record", "--pid", str(proc.popen.pid), "--subprocesses"]
        argv += ["--rate", str(RATE), "--format", "raw", "--output", str(out), "--nonblocking"]
        if os.environ.get("BENCH_PROFILE_GIL") == "1":
            argv.append("--gil")
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        spies.append((spy, out))
    try:
        yield
    finally:
        for spy, _ in spies:
            spy.send_signal(signal.SIGINT)
        for spy, out in spies:
            try:
                spy.wait(timeout=30)
            except subprocess.TimeoutExpired:
                spy.kill()
                spy.wait()
            if out.exists():
                out.with_suffix(".top.txt").write_text(summary(out.read_text()))


def _function(frame: str) -> str:
    # py-spy's raw frames read "function (path/to/file.py:line)"; the line is dropped so
    # that samples of one function add up.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})" if where else name


def summary(raw: str, top: int = 40) -> str:
    """The functions with the most samples, self and inclusive, as shares of all samples."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [_function(frame) for frame in stack.split(";")]
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return "no samples\n"
    lines = [f"{total} samples", "", "self:"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in own.most_common(top)]
    lines += ["", "inclusive:"]
    lines += [f"{100 * n / total:6.1f}%  {name}" for name, n in inclusive.most_common(top * 2)]
    return "\n".join(lines) + "\n"
