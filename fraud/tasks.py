"""Celery tasks of the fraud app: the audit trail, reviews, the sweep and alerts.

Every task is safe to run twice (`acks_late`: a worker that dies mid-task has it
redelivered): each writes under a unique key or a conditional update.
"""

from __future__ import annotations

import uuid
from typing import Any

from celery import shared_task

from fraud import alerts, audit, review

RETRYING: dict[str, Any] = {
    "ignore_result": True,
    "max_retries": 5,
    "autoretry_for": (Exception,),
    "retry_backoff": True,
}


@shared_task(name="fraud.completion_audit", **RETRYING)
def completion_audit(
    *,
    kind: str,
    user_id: str,
    completion_id: str | None,
    risk_score: float,
    payload: dict[str, Any],
    event_key: str | None = None,
) -> None:
    """Record a completion decision in the audit trail. Idempotent per `event_key`."""
    audit.audit_event_write(
        kind=kind,
        user_id=user_id,
        completion_id=completion_id,
        risk_score=risk_score,
        payload=payload,
        event_key=event_key,
    )


@shared_task(name="fraud.audit_drain", **RETRYING)
def audit_drain() -> int:
    """Write the audit records queued in Redis (fraud.audit), in batches. Idempotent."""
    return audit.audit_drain()


@shared_task(name="fraud.user_review", **RETRYING)
def user_review(*, user_id: str, key: str) -> None:
    """Review a flagged user's history over days; may escalate them. Idempotent per key."""
    review.user_review(user_id=uuid.UUID(user_id), key=key)


@shared_task(name="fraud.reviews_due", **RETRYING)
def reviews_due() -> int:
    """Review the users flagged since their last review, in one batch. Idempotent."""
    return review.reviews_due()


@shared_task(name="fraud.review_sweep", ignore_result=True)
def review_sweep() -> None:
    """Queue reviews of users flagged or assessed without signals since their last one."""
    review.review_sweep()


@shared_task(name="fraud.alerts_send", **RETRYING)
def alerts_send() -> None:
    """Send the security team one summary of new blocks and escalations per window."""
    alerts.alerts_send()


@shared_task(name="fraud.lockout_alert", **RETRYING)
def lockout_alert(*, username: str, ip: str | None, scope: str) -> None:
    """Tell the security team a staff account's logins are locked out (once a window)."""
    alerts.lockout_alert_send(username=username, ip=ip, scope=scope)
