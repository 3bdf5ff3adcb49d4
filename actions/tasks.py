from celery import shared_task

from actions.services import idempotency_expire as _expire


@shared_task(name="actions.idempotency_expire", ignore_result=True)
def idempotency_expire() -> int:
    """Delete Idempotency-Key records past their time to live."""
    return _expire()
