"""The ledger's lock-and-add (`ledger_lock`): one statement locks the row and adds the
points; the award that follows records them once, at the same time; a refusal in
between rolls the addition back. Against the real PostgreSQL."""

from __future__ import annotations

import pytest
from django.db import transaction

from accounts.models import User
from actions.models import Completion
from scoreboard.models import ScoreEntry
from scoreboard.services import ledger_award, ledger_lock
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_completion_s_total_entry_and_tie_break_time_agree(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    for _ in range(2):
        assert complete(client, "click", start(client, "click")).status_code == 200
    alice.refresh_from_db()
    last = ScoreEntry.objects.filter(user=alice).latest("id")
    assert alice.score == last.score_after == 2 * click.reward
    assert last.score_before == click.reward
    # The board's tie-break (score_reached_at) is the entry's time: the index applied
    # after commit and a rebuild from the table order the user alike.
    assert alice.score_reached_at == last.created_at
    assert Completion.objects.get(score_entry=last).created_at == last.created_at


class RefusedError(Exception):
    pass


def lock_then_refuse(user_id) -> None:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        row = ledger_lock(user_id=user_id, add=7)
        assert row.user.score == 0
        assert User.objects.get(pk=user_id).score == 7  # inside the transaction
        raise RefusedError


def lock_then_award(user_id, *, locked: int, awarded: int) -> ScoreEntry:  # type: ignore[no-untyped-def]
    with transaction.atomic():
        row = ledger_lock(user_id=user_id, add=locked)
        return ledger_award(user_id=user_id, delta=awarded, locked=row.user).entry


def test_a_refusal_after_the_lock_rolls_the_addition_back() -> None:
    user = UserFactory()
    with pytest.raises(RefusedError):
        lock_then_refuse(user.pk)
    assert User.objects.get(pk=user.pk).score == 0
    assert not ScoreEntry.objects.exists()


def test_the_award_after_a_lock_adds_nothing_twice_and_must_match_it() -> None:
    user = UserFactory()
    entry = lock_then_award(user.pk, locked=5, awarded=5)
    assert (entry.score_before, entry.score_after) == (0, 5)
    assert User.objects.get(pk=user.pk).score == 5
    with pytest.raises(ValueError, match="other points"):
        lock_then_award(user.pk, locked=5, awarded=3)
    assert User.objects.get(pk=user.pk).score == 5
