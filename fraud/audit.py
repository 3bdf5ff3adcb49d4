"""The completion audit trail's outbox: records queued in Redis, written by Celery in batches.

A completion's audit record (accepted or blocked) is one RPUSH onto a Redis list, in the
same round trip as the rest of the request's after-commit Redis work
(`core.redis_batch`), instead of one
Celery message and one task run per completion. A Celery task, `fraud.audit_drain`,
writes the list to PostgreSQL in batches:

  <REDIS_KEY_PREFIX>:fraud:audit        list    JSON records, oldest first
  <REDIS_KEY_PREFIX>:fraud:audit:wake   string  present while a drain is queued

The first record after a drain started queues the next drain, AUDIT_DRAIN_DELAY_SECONDS
later, so under load one task writes many records; the beat runs one every
AUDIT_DRAIN_SECONDS as well, in case a queued drain was lost.

Delivery is at least once and the write exactly once: a drain reads a batch from the
head, inserts it (`ON CONFLICT DO NOTHING` on each record's unique `event_key`), and only
then trims it off, and only if the head is still the batch it read (another drain may
have trimmed it first). A drain killed mid-way leaves its batch for the next one.

Without Redis (the embedded default, or Redis down) a record goes the old way: one
`fraud.completion_audit` task. Losing the list (Redis restarted without persistence)
loses no accepted record: the backfill writes them from the completion rows.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.models import User
from core import metrics
from core.enqueue import task_enqueue
from core.redis_batch import redis_later
from core.redis_client import redis_strict
from core.redis_scripts import redis_script
from fraud.models import AuditEvent

logger = logging.getLogger(__name__)

# KEYS: the list. ARGV: the batch's first record, its length. Trims the batch off the
# head if the head is still that record. Returns 1 if trimmed.
_TRIM = """
if redis.call('LINDEX', KEYS[1], 0) == ARGV[1] then
  redis.call('LTRIM', KEYS[1], tonumber(ARGV[2]), -1)
  return 1
end
return 0
"""
BATCH = 500
MAX_BATCHES = 100  # per task run: bounded; a longer list queues the next run


def _keys() -> tuple[str, str]:
    base = f"{settings.REDIS_KEY_PREFIX}:fraud:audit"
    return base, f"{base}:wake"


def _client() -> Any:
    return redis_strict()


def audit_record(
    *,
    kind: str,
    user_id: uuid.UUID | str,
    completion_id: uuid.UUID | str | None,
    risk_score: float,
    payload: dict[str, Any],
    event_key: str,
) -> None:
    """Queue one audit record; a drain writes it about AUDIT_DRAIN_DELAY_SECONDS later.

    With Redis, two commands of the request's after-commit round trip
    (`core.redis_batch`). Never raises.
    """
    record = {
        "kind": kind,
        "user_id": str(user_id),
        "completion_id": str(completion_id) if completion_id else None,
        "risk_score": risk_score,
        "payload": payload,
        "event_key": event_key,
    }
    if settings.EMBEDDED:
        _as_task(record)
        return
    outbox, wake = _keys()
    encoded = json.dumps(record, separators=(",", ":"), default=str)

    def queue(pipe: Any) -> None:
        pipe.rpush(outbox, encoded)
        pipe.set(wake, "1", nx=True, px=_wake_ms())

    def done(outcome: list[Any] | Exception) -> None:
        if isinstance(outcome, Exception) or isinstance(outcome[0], Exception):
            metrics.backing_service_errors.labels("redis").inc()
            logger.warning("audit outbox unavailable; queueing the record as its own task")
            _as_task(record)
        elif outcome[1]:  # the wake flag was not set: no drain is queued
            _queue_drain(countdown=settings.AUDIT_DRAIN_DELAY_SECONDS)

    redis_later(queue, done)


def _wake_ms() -> int:
    # A queued drain that never runs (broker down) holds the flag this long at most.
    return int(1000 * (settings.AUDIT_DRAIN_DELAY_SECONDS + 5))


def _queue_drain(*, countdown: float) -> None:
    try:
        task_enqueue("fraud.audit_drain", countdown=countdown)
    except Exception:  # the beat's drain writes the list later
        metrics.backing_service_errors.labels("celery").inc()
        logger.warning("could not queue the audit drain; the periodic one will write it")


def _as_task(record: dict[str, Any]) -> None:
    try:
        task_enqueue("fraud.completion_audit", **record)
    except Exception:  # the broker is down: an accepted record is backfilled later
        metrics.backing_service_errors.labels("celery").inc()
        logger.exception("could not queue the audit record %s", record["event_key"])


def audit_drain() -> int:
    """Write queued audit records to PostgreSQL; the number of records read."""
    if settings.EMBEDDED:
        return 0
    client = _client()
    queue, wake = _keys()
    trim = redis_script(client, _TRIM)
    client.delete(wake)  # records queued from now on queue the next drain
    done = 0
    for _ in range(MAX_BATCHES):
        raw = client.lrange(queue, 0, BATCH - 1)
        if not raw:
            return done
        _write(raw)
        trim(keys=[queue], args=[raw[0], len(raw)])
        done += len(raw)
    _queue_drain(countdown=0)  # more than this run's share: the next run goes on
    return done


def _write(raw: Iterable[bytes]) -> None:
    """Insert the records, once each; one that cannot be read or written is logged."""
    events = []
    for item in raw:
        try:
            events.append(AuditEvent(**json.loads(item)))
        except (ValueError, TypeError):
            logger.error("dropped an unreadable audit record: %.200r", item)
    # A user deleted since: the record stays, without the user (as on_delete=SET_NULL).
    known = set(
        User.objects.filter(pk__in={e.user_id for e in events if e.user_id}).values_list(
            "pk", flat=True
        )
    )
    for event in events:
        if event.user_id and uuid.UUID(str(event.user_id)) not in known:
            event.user_id = None
    try:
        with transaction.atomic():
            AuditEvent.objects.bulk_create(events, ignore_conflicts=True)
    except IntegrityError:
        # One record the batch cannot hold (a user deleted mid-way): one at a time.
        for event in events:
            try:
                with transaction.atomic():
                    AuditEvent.objects.bulk_create([event], ignore_conflicts=True)
            except IntegrityError:
                logger.exception("dropped the audit record %s", event.event_key)


def audit_event_write(
    *,
    kind: str,
    user_id: str,
    completion_id: str | None,
    risk_score: float,
    payload: dict[str, Any],
    event_key: str | None = None,
) -> bool:
    """Write one audit record; False when its key was written before (a redelivery).

    Idempotent per `event_key` (by default the kind and the completion)."""
    key = event_key or (f"{kind}:{completion_id}" if completion_id else None)
    try:
        with transaction.atomic():
            AuditEvent.objects.create(
                kind=kind,
                user_id=user_id,
                completion_id=completion_id,
                risk_score=risk_score,
                payload=payload,
                event_key=key,
            )
    except IntegrityError:  # delivered twice: the first delivery wrote it
        return False
    return True


@dataclass(frozen=True)
class AcceptedCompletion:
    """What the `completion.accepted` record of a completion holds (from its row)."""

    completion_id: uuid.UUID
    user_id: uuid.UUID
    risk_score: float
    action_id: str
    entry_id: int
    delta: int
    flagged: bool
    ip: str | None
    user_agent: str


def audit_accepted_backfill(*, records: list[AcceptedCompletion]) -> int:
    """Write the `completion.accepted` records of these completions, marked backfilled;
    the number written. Idempotent: a record written before (by the outbox or an earlier
    run) keeps its unique event key and is skipped."""
    events = [
        AuditEvent(
            kind=AuditEvent.Kind.COMPLETION_ACCEPTED,
            user_id=r.user_id,
            completion_id=r.completion_id,
            risk_score=r.risk_score,
            payload={
                "actionId": r.action_id,
                "delta": r.delta,
                "entryId": r.entry_id,
                "flagged": r.flagged,
                "ip": r.ip,
                "userAgent": r.user_agent,
                "backfilled": True,
            },
            event_key=f"completion.accepted:{r.completion_id}",
        )
        for r in records
    ]
    return len(AuditEvent.objects.bulk_create(events, ignore_conflicts=True))
