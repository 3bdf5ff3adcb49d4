"""A completion whose audit record the broker lost gets it from the backfill, once."""

from __future__ import annotations

from unittest import mock

import pytest

from actions.services import completion_audit_backfill
from fraud.models import AuditEvent
from fraud.tasks import completion_audit

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_writes_the_audit_record_a_broker_outage_lost(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    with mock.patch.object(completion_audit, "delay", side_effect=ConnectionError("broker down")):
        response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200
    assert not AuditEvent.objects.exists()

    assert completion_audit_backfill(older_than_seconds=0) == 1
    audit = AuditEvent.objects.get()
    assert str(audit.completion_id) == response.json()["completionId"]
    assert audit.kind == AuditEvent.Kind.COMPLETION_ACCEPTED
    assert audit.payload["backfilled"] is True
    # Run again, or the original task delivered late: still one record.
    assert completion_audit_backfill(older_than_seconds=0) == 0
    completion_audit(
        kind="completion.accepted",
        user_id=str(alice.pk),
        completion_id=response.json()["completionId"],
        risk_score=0.0,
        payload={},
    )
    assert AuditEvent.objects.count() == 1


def test_it_leaves_completions_that_have_their_record(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    complete(client, "click", start(client, "click"))
    assert completion_audit_backfill(older_than_seconds=0) == 0
    assert AuditEvent.objects.count() == 1
