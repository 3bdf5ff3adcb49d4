"""A setting that fails a system check: the operator sees the check's own message and no
traceback, with a non-zero exit, from `make stack` (python -m deploy.stack), `make run`'s
first step (manage.py bootstrap) and any management command."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.stack import free_port
from tests.support import run_django

CHECK = "(fraud.E003) FRAUD_FLAG_THRESHOLD and FRAUD_BLOCK_THRESHOLD need 0 < flag <= block <= 1"


@pytest.fixture
def bad_env(tmp_path: Path) -> dict[str, str | None]:
    return {
        "FRAUD_FLAG_THRESHOLD": "1.01",
        # Nothing of the machine's databases is touched: the check fails first.
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }


def assert_told(done) -> None:  # type: ignore[no-untyped-def]
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert CHECK in output, output
    assert "Traceback" not in output, output
    assert "CalledProcessError" not in output, output


def test_it_tells_the_failed_check_under_make_stack(bad_env) -> None:  # type: ignore[no-untyped-def]
    argv = ["-m", "deploy.stack", "--web", "1", "--ws", "1", "--no-worker"]
    done = run_django([*argv, "--port", str(free_port())], bad_env, timeout=180)
    assert_told(done)
    assert done.stderr.strip().startswith("SystemCheckError"), done.stderr


@pytest.mark.parametrize(
    "command",
    [["bootstrap"], ["migrate"], ["rebuild_leaderboard"], ["ban_user", "nobody"]],
)
def test_it_tells_the_failed_check_to_a_management_command(bad_env, command) -> None:  # type: ignore[no-untyped-def]
    assert_told(run_django(["manage.py", *command], bad_env))
