"""A side effect that fails after a completion committed does not fail the request, and
the side effects after it still run (found cutting PostgreSQL under load)."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import OperationalError

from actions.models import Completion
from fraud.models import AuditEvent

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_answers_200_when_the_index_update_fails_after_commit(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    token = start(client, "click")
    with mock.patch(
        "leaderboard.services.leaderboard_score_changed",
        side_effect=OperationalError("server closed the connection unexpectedly"),
    ):
        response = complete(client, "click", token)
    assert response.status_code == 200, response.content
    assert Completion.objects.filter(pk=response.json()["completionId"]).exists()
    # The audit hook, queued after the failing one, ran.
    assert AuditEvent.objects.filter(completion_id=response.json()["completionId"]).count() == 1


def test_it_answers_200_when_the_connection_breaks_right_after_commit(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    """Found cutting PostgreSQL under load: the transaction committed, then resetting
    the connection failed, and the client got 503 for a stored completion."""
    from django.db.backends.base.base import BaseDatabaseWrapper

    client = client_for(alice)
    token = start(client, "click")
    original = BaseDatabaseWrapper.run_and_clear_commit_hooks
    calls = {"n": 0}

    def breaks_once(self):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return original(self)

    with mock.patch.object(BaseDatabaseWrapper, "run_and_clear_commit_hooks", breaks_once):
        response = complete(client, "click", token)
    assert response.status_code == 200, response.content
    assert response.json()["newScore"] == 5
    assert Completion.objects.filter(pk=response.json()["completionId"]).exists()
    # And a completion that did not commit is still refused with 503.
    token = start(client, "click")
    with mock.patch(
        "actions.services.ledger_award", side_effect=OperationalError("connection lost")
    ):
        response = complete(client, "click", token)
    assert response.status_code == 503, response.content
    assert Completion.objects.count() == 1
