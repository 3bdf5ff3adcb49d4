from celery import Task, shared_task

from leaderboard.closing import period_revise, periods_close_due
from leaderboard.rebuild import leaderboard_reconcile


@shared_task(name="leaderboard.reconcile", ignore_result=True)
def reconcile() -> int:
    """Replay recent ledger entries into the ranking index (see leaderboard_reconcile)."""
    return leaderboard_reconcile()


@shared_task(name="leaderboard.close_periods", ignore_result=True)
def close_periods() -> int:
    """Close every period that has ended (idempotent; catches up on missed runs)."""
    return len(periods_close_due())


@shared_task(name="leaderboard.revise_period", bind=True, ignore_result=True, max_retries=60)
def revise_period(self: Task, *, period_id: int, cause: str) -> int | None:
    """Recompute a closed period touched by a reversal or a ban (a new revision if its
    standings changed); retried while the period is still being closed."""
    revision = period_revise(period_id, cause=cause)
    if revision == -1 and not self.request.is_eager:
        raise self.retry(countdown=5)
    return revision
