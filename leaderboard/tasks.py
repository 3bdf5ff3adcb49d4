from celery import shared_task

from leaderboard.rebuild import leaderboard_reconcile


@shared_task(name="leaderboard.reconcile", ignore_result=True)
def reconcile() -> int:
    """Replay recent ledger entries into the ranking index (see leaderboard_reconcile)."""
    return leaderboard_reconcile()
