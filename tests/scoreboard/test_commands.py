"""Operator commands: bootstrap and seed_demo."""

from __future__ import annotations

import subprocess
import threading
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command

from accounts.models import User
from actions.models import ActionType
from scoreboard.selectors import ledger_sum
from tests.support import run_django


@pytest.mark.django_db
def test_it_seeds_demo_data_once() -> None:
    call_command("seed_demo", stdout=StringIO())
    call_command("seed_demo", stdout=StringIO())
    assert User.objects.filter(username__in=["alice", "bob", "carol", "dave", "erin"]).count() == 5
    assert ActionType.objects.filter(id__in=["click", "quiz", "level-up"]).count() == 3
    alice = User.objects.get(username="alice")
    assert alice.score == 420
    assert ledger_sum(user_id=alice.pk) == 420
    assert alice.check_password("scoreboard-demo")


@pytest.mark.django_db
def test_it_skips_demo_data_when_users_exist(alice) -> None:  # type: ignore[no-untyped-def]
    out = StringIO()
    call_command("seed_demo", "--if-empty", stdout=out)
    assert "not loaded" in out.getvalue()
    assert not ActionType.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_it_bootstraps_in_parallel_without_errors() -> None:
    """Two instances starting at once: both succeed, demo data is loaded exactly once."""
    db = settings.DATABASES["default"]
    env = {
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": settings.REDIS_URL,
    }
    results: list[subprocess.CompletedProcess[str]] = []

    def run() -> None:
        results.append(run_django(["manage.py", "bootstrap"], env))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=150)
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    assert User.objects.count() == 5
    assert sum("5 users" in r.stdout for r in results) == 1


def test_it_fails_clearly_when_the_database_is_down() -> None:
    done = run_django(
        ["manage.py", "bootstrap"], {"DATABASE_URL": "postgres://postgres@127.0.0.1:1/nothing"}
    )
    assert done.returncode != 0
    assert "Database unavailable" in done.stderr
    assert "Traceback" not in done.stderr
