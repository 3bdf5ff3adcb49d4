"""Settings refuse to start production with a default secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _start_django(env_overrides: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "JWT_SIGNING_KEY"}}
    env.update({"DJANGO_SETTINGS_MODULE": "config.settings", "SCOREBOARD_READ_DOT_ENV": "0"})
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("secret", [None, "", "changeme", "django-insecure-abc"])
def test_it_refuses_a_default_secret_in_production(secret: str | None) -> None:
    done = _start_django({"DEBUG": "0", "SECRET_KEY": secret, "JWT_SIGNING_KEY": "k" * 50})
    assert done.returncode != 0
    assert "SECRET_KEY must be set" in done.stderr


def test_it_refuses_a_missing_jwt_key_in_production() -> None:
    done = _start_django({"DEBUG": "0", "SECRET_KEY": "s" * 50})
    assert done.returncode != 0
    assert "JWT_SIGNING_KEY must be set" in done.stderr


def test_it_starts_in_production_with_real_secrets() -> None:
    done = _start_django({"DEBUG": "0", "SECRET_KEY": "s" * 50, "JWT_SIGNING_KEY": "k" * 50})
    assert done.returncode == 0, done.stderr
    assert "started" in done.stdout


def test_it_allows_a_missing_secret_in_debug() -> None:
    done = _start_django({"DEBUG": "1"})
    assert done.returncode == 0, done.stderr
