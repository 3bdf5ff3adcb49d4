"""Settings refuse to start production with a default secret."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import run_django


def _start_django(env: dict[str, str | None]) -> subprocess.CompletedProcess[str]:
    return run_django(
        ["-c", "import django; django.setup(); print('started')"],
        {"SECRET_KEY": None, "JWT_SIGNING_KEY": None, **env},
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
