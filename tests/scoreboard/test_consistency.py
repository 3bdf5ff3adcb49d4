"""check_consistency: score = ledger sum = index score, and --repair."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command

from accounts.models import User
from leaderboard.index import RedisIndex
from scoreboard.services import ledger_award

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_passes_when_everything_agrees(alice, bob, capsys) -> None:  # type: ignore[no-untyped-def]
    ledger_award(user_id=alice.pk, delta=5)
    ledger_award(user_id=bob.pk, delta=8)
    call_command("check_consistency")
    assert "Consistent" in capsys.readouterr().out


def test_it_finds_and_repairs_drift(alice, bob, capsys) -> None:  # type: ignore[no-untyped-def]
    ledger_award(user_id=alice.pk, delta=5)
    ledger_award(user_id=bob.pk, delta=8)
    User.objects.filter(pk=alice.pk).update(score=999)  # a total written behind the ledger
    index = RedisIndex()
    generation = index.current_generation()
    assert generation is not None
    index.client.delete(index.generation_keys(generation)["z"])  # and an index that lost its set
    with pytest.raises(CommandError, match="Inconsistent"):
        call_command("check_consistency")
    out = capsys.readouterr().out
    assert "score 999 != ledger sum 5" in out
    call_command("check_consistency", "--repair")
    alice.refresh_from_db()
    assert alice.score == 5
    call_command("check_consistency")
    assert "Consistent" in capsys.readouterr().out
