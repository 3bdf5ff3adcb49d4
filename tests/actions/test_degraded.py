"""Completions keep working when Redis is down; the operator command validates input."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from actions.models import ActionType

pytestmark = pytest.mark.django_db


def test_it_accepts_completions_with_redis_down(
    client_for, alice, click, start, complete, redis_down, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_USER = "2/m"
    client = client_for(alice)
    statuses = [complete(client, "click", start(client, "click")).status_code for _ in range(3)]
    # the per-process fallback limit still applies; nothing fails with a 500
    assert statuses == [200, 200, 429]
    alice.refresh_from_db()
    assert alice.score == 10


def test_it_creates_and_updates_action_types() -> None:
    out = StringIO()
    call_command(
        "create_action_type",
        "--id",
        "quiz",
        "--name",
        "Quiz",
        "--reward",
        "25",
        "--cooldown",
        "10",
        "--min-duration",
        "3",
        "--daily-cap",
        "5",
        stdout=out,
    )
    assert "Created" in out.getvalue()
    call_command(
        "create_action_type",
        "--id",
        "quiz",
        "--name",
        "Quiz 2",
        "--reward",
        "30",
        "--inactive",
        stdout=out,
    )
    quiz = ActionType.objects.get(pk="quiz")
    assert (quiz.name, quiz.reward, quiz.active, quiz.daily_cap) == ("Quiz 2", 30, False, None)


@pytest.mark.parametrize(
    "args",
    [
        ["--id", "Bad Slug", "--name", "x", "--reward", "1"],
        ["--id", "ok", "--name", "x", "--reward", "0"],
        ["--id", "ok", "--name", "x", "--reward", "1", "--daily-cap", "0"],
    ],
)
def test_it_refuses_invalid_action_types(args: list[str]) -> None:
    with pytest.raises(CommandError, match="Invalid action type"):
        call_command("create_action_type", *args)
    assert not ActionType.objects.exists()
