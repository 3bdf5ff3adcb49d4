from celery import shared_task

from actions.audit_backfill import completion_audit_backfill as _backfill
from actions.idempotency import idempotency_expire as _expire


@shared_task(name="actions.idempotency_expire", ignore_result=True)
def idempotency_expire() -> int:
    """Delete Idempotency-Key records past their time to live."""
    return _expire()


@shared_task(name="actions.completion_audit_backfill", ignore_result=True)
def completion_audit_backfill() -> int:
    """Write the audit records that a broker outage lost (idempotent); a run that stops
    with more to write queues the next at once, not at the beat's next tick."""
    return _backfill(on_more=_backfill_more)


def _backfill_more() -> None:
    completion_audit_backfill.delay()
