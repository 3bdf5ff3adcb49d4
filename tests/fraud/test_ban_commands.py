"""ban_user / unban_user: off the board at once, writes refused, audited, reversible."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from fraud.models import AuditEvent
from leaderboard.selectors import leaderboard_rank_of, leaderboard_top
from scoreboard.services import ledger_award
from tests.conftest import access_token_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_bans_and_unbans_a_user(mallory, alice, api_client) -> None:  # type: ignore[no-untyped-def]
    ledger_award(user_id=mallory.pk, delta=900)
    ledger_award(user_id=alice.pk, delta=10)
    token = access_token_for(mallory)
    call_command("ban_user", "mallory", "--reason", "scripted clicks")
    assert [e["username"] for e in leaderboard_top(n=10)] == ["alice"]
    assert leaderboard_rank_of(user_id=mallory.pk) is None
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = api_client.post("/api/v1/actions/complete/", {}, format="json")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "user_banned"
    assert AuditEvent.objects.get(kind="user.banned").payload["reason"] == "scripted clicks"

    call_command("unban_user", "mallory")
    assert [e["username"] for e in leaderboard_top(n=10)] == ["mallory", "alice"]
    assert AuditEvent.objects.filter(kind="user.unbanned").count() == 1


def test_it_says_when_nothing_changes(alice, capsys) -> None:  # type: ignore[no-untyped-def]
    call_command("unban_user", "alice")
    assert "already not banned" in capsys.readouterr().out


def test_it_refuses_unknown_users(db) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CommandError, match="No user named"):
        call_command("ban_user", "nobody")
