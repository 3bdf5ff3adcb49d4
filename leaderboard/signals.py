"""What staff do to boards, for the apps above that keep the audit trail (fraud writes it;
leaderboard imports no app above it).

`board_staff_act`: a board was created or changed, or a season ended early, by staff in
the admin or by an operator's command. kwargs: act (`board.saved` or
`board.season_ended`), board (its slug), actor (the admin's username, or the command),
user (the staff user, or None for a command), details (what was set).
"""

from __future__ import annotations

from typing import Any

from django.dispatch import Signal

board_staff_act = Signal()


def board_act_audit(
    *, act: str, board: str, actor: str, user: Any = None, details: dict[str, Any] | None = None
) -> None:
    """Send `board_staff_act` (its receivers write the audit record)."""
    board_staff_act.send(
        sender=None, act=act, board=board, actor=actor, user=user, details=details or {}
    )
