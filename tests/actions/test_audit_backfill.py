"""A completion whose audit record was lost (the outbox's Redis list gone before a drain
wrote it) gets it from the backfill, once."""

from __future__ import annotations

import time
import uuid
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone

from actions.audit_backfill import completion_audit_backfill
from actions.models import AuditBackfillCursor, Completion
from fraud import audit
from fraud.models import AuditEvent
from fraud.tasks import audit_drain, completion_audit
from scoreboard.models import ScoreEntry

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


def _lost_completions(user, action, count: int, *, at) -> list[Completion]:  # type: ignore[no-untyped-def]
    """`count` accepted completions whose audit records were lost (none was written)."""
    entries = ScoreEntry.objects.bulk_create(
        ScoreEntry(
            user=user,
            delta=5,
            score_before=5 * n,
            score_after=5 * (n + 1),
            reason=ScoreEntry.Reason.COMPLETION,
            action_id=action.pk,
            created_at=at,
        )
        for n in range(count)
    )
    return Completion.objects.bulk_create(
        Completion(
            user=user,
            action=action,
            nonce=uuid.uuid4().hex,
            score_entry=entry,
            delta=5,
            started_at=at,
            created_at=at + timedelta(microseconds=n),
        )
        for n, entry in enumerate(entries)
    )


def test_one_run_writes_every_missing_record_past_a_batch_once_and_keeps_a_cursor(
    alice, click
) -> None:  # type: ignore[no-untyped-def]
    lost = _lost_completions(alice, click, 2500, at=timezone.now() - timedelta(minutes=1))
    began = time.monotonic()
    assert completion_audit_backfill(batch=1000) == 2500
    elapsed = time.monotonic() - began
    have = list(AuditEvent.objects.values_list("completion_id", flat=True))
    assert sorted(have) == sorted(c.pk for c in lost)
    cursor = AuditBackfillCursor.objects.get()
    assert cursor.position > lost[-1].created_at
    assert completion_audit_backfill(batch=1000) == 0
    # A transaction that committed after the cursor passed its created_at: the overlap.
    late = _lost_completions(alice, click, 1, at=cursor.position - timedelta(seconds=30))
    assert completion_audit_backfill() == 1
    assert AuditEvent.objects.filter(completion_id=late[0].pk).count() == 1
    print(f"backfill: 2,500 records in {elapsed:.2f} s ({2500 / elapsed:,.0f}/s)")


def test_a_run_past_its_budget_hands_on_to_the_next(alice, click) -> None:  # type: ignore[no-untyped-def]
    _lost_completions(alice, click, 300, at=timezone.now() - timedelta(minutes=1))
    more: list[bool] = []
    written = completion_audit_backfill(
        batch=100, budget_seconds=0, on_more=lambda: more.append(True)
    )
    assert written == 100
    assert more == [True]
    assert completion_audit_backfill(batch=100) == 200


def test_the_defaults_meet_the_two_minute_bound(settings, alice, click) -> None:  # type: ignore[no-untyped-def]
    """SPEC: every accepted completion has its record within 2 minutes, also after an
    outage. After the broker and a worker are back, the beat's next run comes within
    AUDIT_BACKFILL_SECONDS; it writes every completion older than AUDIT_BACKFILL_AGE_SECONDS
    in at most AUDIT_BACKFILL_RUN_SECONDS (then the next run is queued at once); the last
    completions before the recovery are AGE old one run later."""
    bound = 120.0
    age, cadence = settings.AUDIT_BACKFILL_AGE_SECONDS, settings.AUDIT_BACKFILL_SECONDS
    run = settings.AUDIT_BACKFILL_RUN_SECONDS
    assert age + cadence + run <= bound / 2  # half the bound left for a backlog
    # The outbox's drain writes a record first: the backfill only writes lost ones.
    assert age > settings.AUDIT_DRAIN_SECONDS + settings.AUDIT_DRAIN_DELAY_SECONDS
    # Capacity: a 5-minute outage at the benchmark's full rate (200 completions/s) is
    # 60,000 lost records, written in the time the bound leaves, measured here.
    _lost_completions(alice, click, 5000, at=timezone.now() - timedelta(minutes=1))
    began = time.monotonic()
    assert completion_audit_backfill() == 5000
    rate = 5000 / (time.monotonic() - began)
    assert rate * (bound - age - cadence) >= 200 * 300, f"{rate:,.0f} records/s"
