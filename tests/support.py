"""Running Django in a fresh process, configured only by its environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_django(
    argv: list[str], env: dict[str, str | None] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python ARGV` in the project root with config.settings (not the test settings).

    The environment is this process's, with `env` on top; a None value removes a variable.
    """
    merged: dict[str, str] = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "SCOREBOARD_READ_DOT_ENV": "0",
    }
    for key, value in (env or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return subprocess.run(
        [sys.executable, *argv],
        env=merged,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
