"""A completion whose audit record was lost (the outbox's Redis list gone before a drain
wrote it) gets it from the backfill, once."""

from __future__ import annotations

from unittest import mock

import pytest

from actions.services import completion_audit_backfill
from fraud import audit
from fraud.models import AuditEvent
from fraud.tasks import audit_drain, completion_audit

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_writes_the_audit_record_a_broker_outage_lost(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    with mock.patch.object(audit_drain, "apply_async", side_effect=ConnectionError("broker down")):
        response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200
    outbox, _ = audit._keys()
    assert audit._client().llen(outbox) == 1  # queued, not written
    audit._client().delete(outbox)  # Redis restarted without persistence
    assert audit.audit_drain() == 0
    assert not AuditEvent.objects.exists()

    assert completion_audit_backfill(older_than_seconds=0) == 1
    record = AuditEvent.objects.get()
    assert str(record.completion_id) == response.json()["completionId"]
    assert record.kind == AuditEvent.Kind.COMPLETION_ACCEPTED
    assert record.payload["backfilled"] is True
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
