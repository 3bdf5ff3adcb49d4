"""The audit backfill: every accepted completion gets its `completion.accepted` record,
also when the broker or Redis lost it (docs/fraud.md, "The audit bound")."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from actions.models import AuditBackfillCursor, Completion
from fraud.audit import AcceptedCompletion, audit_accepted_backfill
from fraud.models import AuditEvent

logger = logging.getLogger(__name__)


_BACKFILL_CURSOR = "completion.accepted"


def completion_audit_backfill(
    *,
    older_than_seconds: float | None = None,
    batch: int | None = None,
    budget_seconds: float | None = None,
    on_more: Callable[[], None] | None = None,
) -> int:
    """Write the accepted-audit record of every completion that has none; the number
    written.

    The record is queued after commit; when the broker is down, or loses its queue (a
    Redis restarted without persistence), it is never written. The completion row holds
    what the record needs. Idempotent: the record's unique `event_key` is the task's own,
    so a late delivery of the original task (or a second backfill) writes nothing more.

    Scans the completions older than AUDIT_BACKFILL_AGE_SECONDS (the outbox's own drain
    writes theirs first) from a durable cursor, less AUDIT_BACKFILL_OVERLAP_SECONDS for
    transactions that committed late, in batches of AUDIT_BACKFILL_BATCH, for at most
    AUDIT_BACKFILL_RUN_SECONDS; `on_more` is called if it stopped with more to write.
    The cursor moves only past completions that all have their record.
    """
    age = settings.AUDIT_BACKFILL_AGE_SECONDS if older_than_seconds is None else older_than_seconds
    size = batch or settings.AUDIT_BACKFILL_BATCH
    budget = settings.AUDIT_BACKFILL_RUN_SECONDS if budget_seconds is None else budget_seconds
    began = time.monotonic()
    now = timezone.now()
    upto = now - timedelta(seconds=age)
    cursor = AuditBackfillCursor.objects.filter(name=_BACKFILL_CURSOR).first()
    since = (
        cursor.position - timedelta(seconds=settings.AUDIT_BACKFILL_OVERLAP_SECONDS)
        if cursor is not None
        else now - timedelta(days=settings.AUDIT_BACKFILL_FIRST_DAYS)
    )
    written = 0
    while True:
        # NOT EXISTS on the audit trail's completion index, along the completions'
        # created_at index: each batch starts at the oldest completion still missing.
        missing = list(
            Completion.objects.filter(created_at__gte=since, created_at__lt=upto)
            .exclude(
                Exists(
                    AuditEvent.objects.filter(
                        completion_id=OuterRef("pk"), kind=AuditEvent.Kind.COMPLETION_ACCEPTED
                    )
                )
            )
            .order_by("created_at")[:size]
        )
        if missing:
            written += _backfill_write(missing)
            since = missing[-1].created_at
        if len(missing) < size:
            _backfill_cursor_advance(upto)
            break
        _backfill_cursor_advance(since)
        if time.monotonic() - began >= budget:
            if on_more is not None:
                on_more()
            break
    if written:
        logger.warning("wrote %d missing completion audit records", written)
    return written


def _backfill_write(completions: list[Completion]) -> int:
    return audit_accepted_backfill(
        records=[
            AcceptedCompletion(
                completion_id=c.pk,
                user_id=c.user_id,
                risk_score=c.risk_score,
                action_id=c.action_id,
                entry_id=c.score_entry_id,
                delta=c.delta,
                flagged=c.flagged,
                ip=c.ip,
                user_agent=c.user_agent,
            )
            for c in completions
        ]
    )


def _backfill_cursor_advance(position: datetime) -> None:
    """Move the cursor forward to `position` (never back: runs may overlap)."""
    moved = AuditBackfillCursor.objects.filter(name=_BACKFILL_CURSOR, position__lt=position).update(
        position=position
    )
    if not moved:
        AuditBackfillCursor.objects.get_or_create(
            name=_BACKFILL_CURSOR, defaults={"position": position}
        )
