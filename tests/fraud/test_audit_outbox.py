"""The audit outbox (fraud.audit): records queued in the real Redis, written to the real
PostgreSQL by drains, each exactly once, in batches, under races and after a drain died."""

from __future__ import annotations

import json
import threading
import uuid
from unittest import mock

import pytest
from django.db import connections

from fraud import audit
from fraud.models import AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def queue(user_id: uuid.UUID, n: int, *, start: int = 0) -> list[str]:
    keys = []
    for i in range(start, start + n):
        key = f"completion.accepted:test-{i}"
        audit.audit_record(
            kind="completion.accepted",
            user_id=user_id,
            completion_id=uuid.uuid4(),
            risk_score=0.25,
            payload={"n": i},
            event_key=key,
        )
        keys.append(key)
    return keys


def outbox_length() -> int:
    return audit._client().llen(audit._keys()[0])


def test_a_completion_s_record_is_written_by_the_drain_it_queued(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200
    event = AuditEvent.objects.get()  # the drain ran (Celery is eager in the tests)
    assert event.kind == AuditEvent.Kind.COMPLETION_ACCEPTED
    assert str(event.completion_id) == response.json()["completionId"]
    assert event.event_key == f"completion.accepted:{event.completion_id}"
    assert event.user_id == alice.pk
    assert event.payload["actionId"] == "click"
    assert outbox_length() == 0


def test_one_drain_is_queued_for_many_records_until_it_starts(drains_held, settings) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    queue(user.pk, 50)
    assert drains_held.call_count == 1
    assert drains_held.call_args.kwargs == {"countdown": settings.AUDIT_DRAIN_DELAY_SECONDS}
    assert audit.audit_drain() == 50
    assert AuditEvent.objects.count() == 50
    queue(user.pk, 1, start=50)  # after the drain started: the next one is queued
    assert drains_held.call_count == 2


def test_a_drain_writes_a_long_outbox_in_batches_and_empties_it(drains_held) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    keys = queue(user.pk, audit.BATCH * 2 + 37)
    assert audit.audit_drain() == len(keys)
    assert sorted(AuditEvent.objects.values_list("event_key", flat=True)) == sorted(keys)
    assert outbox_length() == 0


def test_a_batch_written_by_a_drain_that_died_before_trimming_is_not_written_twice(
    drains_held,
) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    keys = queue(user.pk, 30)
    client = audit._client()
    audit._write(client.lrange(audit._keys()[0], 0, -1))  # the dead drain got this far
    assert outbox_length() == 30
    assert audit.audit_drain() == 30  # the next drain reads them again
    assert AuditEvent.objects.count() == len(keys)
    assert outbox_length() == 0


def test_drains_racing_over_one_outbox_write_every_record_once(drains_held) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    keys = queue(user.pk, 1500)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def drain() -> None:
        try:
            barrier.wait(timeout=30)
            for _ in range(3):
                audit.audit_drain()
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=drain) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    assert not any(thread.is_alive() for thread in threads)
    written = list(AuditEvent.objects.values_list("event_key", flat=True))
    assert len(written) == len(set(written)) == len(keys)
    assert outbox_length() == 0


def test_records_queued_while_drains_run_are_all_written(drains_held) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    stop = threading.Event()
    written_by_drains: list[int] = []

    def drain() -> None:
        try:
            while not stop.is_set():
                written_by_drains.append(audit.audit_drain())
        finally:
            connections.close_all()

    drainer = threading.Thread(target=drain)
    drainer.start()
    keys = []
    for round_ in range(20):
        keys += queue(user.pk, 25, start=round_ * 25)
    stop.set()
    drainer.join(timeout=60)
    audit.audit_drain()  # what was queued after the drainer's last read
    assert sorted(AuditEvent.objects.values_list("event_key", flat=True)) == sorted(keys)
    assert outbox_length() == 0


def test_a_record_of_a_deleted_user_is_kept_without_the_user(drains_held) -> None:  # type: ignore[no-untyped-def]
    gone, kept = UserFactory(), UserFactory()
    queue(gone.pk, 1)
    queue(kept.pk, 1, start=1)
    gone.delete()
    assert audit.audit_drain() == 2
    assert AuditEvent.objects.get(event_key="completion.accepted:test-0").user_id is None
    assert AuditEvent.objects.get(event_key="completion.accepted:test-1").user_id == kept.pk


def test_an_unreadable_record_is_dropped_and_the_rest_written(drains_held, caplog) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    queue(user.pk, 1)
    outbox = audit._keys()[0]
    audit._client().rpush(outbox, b"{not json", json.dumps({"kind": "x", "nope": 1}))
    queue(user.pk, 1, start=1)
    assert audit.audit_drain() == 4
    assert AuditEvent.objects.count() == 2
    assert outbox_length() == 0
    assert "unreadable audit record" in caplog.text


def test_without_redis_the_record_is_written_by_a_task_of_its_own(redis_down) -> None:  # type: ignore[no-untyped-def]
    user = UserFactory()
    queue(user.pk, 1)
    assert AuditEvent.objects.get().event_key == "completion.accepted:test-0"


def test_a_failed_write_leaves_the_batch_queued_for_the_retry(drains_held) -> None:  # type: ignore[no-untyped-def]
    from django.db import OperationalError

    user = UserFactory()
    queue(user.pk, 5)
    with (
        mock.patch.object(
            AuditEvent.objects, "bulk_create", side_effect=OperationalError("database down")
        ),
        pytest.raises(OperationalError),
    ):
        audit.audit_drain()
    assert outbox_length() == 5
    assert audit.audit_drain() == 5
    assert AuditEvent.objects.count() == 5
