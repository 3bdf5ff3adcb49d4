"""A completion is one transaction: a failure after the ledger insert leaves nothing."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from actions import services
from actions.models import Completion
from fraud.models import AuditEvent
from scoreboard.models import ScoreEntry

pytestmark = pytest.mark.django_db


def test_it_leaves_nothing_behind_when_the_transaction_fails(
    client_for, alice, click, start, complete, monkeypatch, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    token = start(client, "click")
    hooks: list[dict] = []
    monkeypatch.setattr(
        "leaderboard.services.leaderboard_score_changed", lambda **kw: hooks.append(kw)
    )

    def explode(**kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk full")

    monkeypatch.setattr(services.Completion.objects, "create", explode)
    crashing = APIClient(raise_request_exception=False)
    crashing.credentials(HTTP_AUTHORIZATION=client._credentials["HTTP_AUTHORIZATION"])
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = crashing.post(
            "/api/v1/actions/complete/", {"actionId": "click", "actionToken": token}, format="json"
        )
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    alice.refresh_from_db()
    assert alice.score == 0
    assert not ScoreEntry.objects.exists()
    assert not Completion.objects.exists()
    assert not AuditEvent.objects.exists()
    assert callbacks == []
    assert hooks == []
    monkeypatch.undo()
    # the token was not consumed: the same completion succeeds once the fault is gone
    assert complete(client, "click", token).status_code == 200


def test_it_announces_the_change_and_audits_it_only_after_commit(
    client_for, alice, click, start, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    token = start(client, "click")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(
            "/api/v1/actions/complete/", {"actionId": "click", "actionToken": token}, format="json"
        )
        assert response.status_code == 200
        assert not AuditEvent.objects.exists()
    assert len(callbacks) == 2  # the leaderboard hook and the audit task
    for callback in callbacks:
        callback()
    event = AuditEvent.objects.get()
    assert event.kind == "completion.accepted"
    assert str(event.completion_id) == response.json()["completionId"]
