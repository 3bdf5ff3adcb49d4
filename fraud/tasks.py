"""Celery tasks of the fraud app: the asynchronous audit trail."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from fraud.models import AuditEvent


@shared_task(
    name="fraud.completion_audit",
    ignore_result=True,
    max_retries=5,
    autoretry_for=(Exception,),
    retry_backoff=True,
)
def completion_audit(
    *,
    kind: str,
    user_id: str,
    completion_id: str | None,
    risk_score: float,
    payload: dict[str, Any],
) -> None:
    """Record a completion decision in the audit trail. Idempotent per completion."""
    if completion_id and AuditEvent.objects.filter(completion_id=completion_id, kind=kind).exists():
        return
    AuditEvent.objects.create(
        kind=kind,
        user_id=user_id,
        completion_id=completion_id,
        risk_score=risk_score,
        payload=payload,
    )
