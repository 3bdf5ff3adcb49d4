"""The audit trail of staff acts on boards (leaderboard.signals): who created or changed
a board, or ended a season early, and what they set."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from fraud.models import AuditEvent
from leaderboard.signals import board_staff_act

BOARD_KINDS = {
    "board.saved": AuditEvent.Kind.BOARD_SAVED,
    "board.season_ended": AuditEvent.Kind.SEASON_ENDED,
}


@receiver(board_staff_act, dispatch_uid="fraud.board_acts.audit")
def board_act_audit(
    sender: object,
    *,
    act: str,
    board: str,
    actor: str,
    user: Any,
    details: dict[str, Any],
    **kwargs: Any,
) -> None:
    AuditEvent.objects.create(
        kind=BOARD_KINDS[act],
        user=user if getattr(user, "pk", None) else None,
        payload={"actor": actor, "board": board, **details},
    )
