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
