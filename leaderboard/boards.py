"""Boards: their definition by staff (validated, period rules frozen once a board has
entries), and the active boards as each process keeps them."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from datetime import time as clock_time
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.errors import ConflictError, InvalidInputError, NotFoundError
from leaderboard.models import GLOBAL, Board, Period, PeriodCredit
from leaderboard.periods import PeriodRule, Span, span_at, validate_rule
from leaderboard.signals import board_act_audit

# The fields that decide which period a completion counts in: frozen once credited.
RULE_FIELDS = (
    "period",
    "timezone",
    "week_starts_on",
    "day_starts_at",
    "starts_at",
    "ends_at",
    "action_types",
)


class BoardNotFoundError(NotFoundError):
    code = "board_not_found"
    message = "No such board."


class PeriodNotFoundError(NotFoundError):
    code = "period_not_found"
    message = "No such period on this board."


class BoardRulesFrozenError(ConflictError):
    code = "board_rules_frozen"
    message = "This board has entries: its period rules and action types can no longer change."


def board_save(
    *, slug: str, actor: str = "", user: Any = None, **fields: Any
) -> tuple[Board, bool]:
    """Create or update the board `slug` (fields as the model names them); returns it and
    whether it was created. Raises `InvalidInputError` for an invalid definition and
    `BoardRulesFrozenError` when a rule would change on a board that has entries. A staff
    act (`actor`: the admin's name or the command) is audited in the same transaction."""
    fields = {name: value for name, value in fields.items() if value is not None}
    if "action_types" in fields:
        fields["action_types"] = sorted(set(fields["action_types"]))
    with transaction.atomic():
        board = Board.objects.select_for_update().filter(slug=slug).first()
        created = board is None
        if board is None:
            board = Board(slug=slug, title=fields.pop("title", slug))
        changed = rule_changes(board, fields)
        for name, value in fields.items():
            setattr(board, name, value)
        if board.period != Board.Period.SEASON:
            board.starts_at = board.ends_at = None
        board_check(board, changed=set() if created else changed)
        try:
            board.save()
        except IntegrityError as exc:  # a concurrent create of the same slug
            raise ConflictError("A board with this slug was just created.") from exc
        if actor:
            board_act_audit(
                act="board.saved",
                board=board.slug,
                actor=actor,
                user=user,
                details={"created": created, "fields": _shown(fields)},
            )
    boards_changed()
    return board, created


def _shown(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        name: value.isoformat() if hasattr(value, "isoformat") else value
        for name, value in fields.items()
    }


def rule_changes(board: Board, fields: dict[str, Any]) -> set[str]:
    """The rule fields that `fields` would change on `board`."""
    return {
        name
        for name in RULE_FIELDS
        if name in fields and _differs(getattr(board, name), fields[name])
    }


def board_check(board: Board, *, changed: set[str]) -> None:
    """Raise `InvalidInputError` for an invalid definition and `BoardRulesFrozenError`
    when `changed` names rule fields of a saved board that has entries. What
    `board_save` checks, also run by the admin's form so its errors show on the form."""
    _validate(board)
    if changed and board_has_entries(board):
        raise BoardRulesFrozenError(details={"fields": sorted(changed)})
    if board.slug == GLOBAL and (board.period != Board.Period.ALL_TIME or board.action_types):
        raise InvalidInputError(
            "The board `global` counts every action type for all time.",
            details={"period": ["global is all_time over every action type"]},
        )


def board_has_entries(board: Board) -> bool:
    return bool(board.pk) and PeriodCredit.objects.filter(period__board=board).exists()


def _differs(old: Any, new: Any) -> bool:
    if isinstance(old, clock_time) and isinstance(new, clock_time):
        return old.replace(second=0, microsecond=0) != new.replace(second=0, microsecond=0)
    if isinstance(old, list) and isinstance(new, list):
        return sorted(old) != sorted(new)
    return bool(old != new)


def _validate(board: Board) -> None:
    errors: dict[str, list[str]] = {}
    if not board.title.strip():
        errors["title"] = ["A board needs a title."]
    try:
        validate_rule(board.rule)
    except ValueError as exc:
        errors["period"] = [str(exc)]
    if not all(isinstance(a, str) and a for a in board.action_types):
        errors["actionTypes"] = ["A list of action type ids."]
    if errors:
        raise InvalidInputError("Invalid board.", details=errors)


def season_end_now(
    *, slug: str, now: datetime | None = None, actor: str = "", user: Any = None
) -> Board:
    """End a running season now: its period ends at this instant and is then closed like
    any other (by the closer, within its grace)."""
    now = now or timezone.now()
    with transaction.atomic():
        board = Board.objects.select_for_update().filter(slug=slug).first()
        if board is None:
            raise BoardNotFoundError()
        if board.period != Board.Period.SEASON:
            raise ConflictError("Only a season can be ended early.")
        if board.starts_at is None or board.ends_at is None:
            raise ConflictError("This season has no dates.")
        if now >= board.ends_at:
            raise ConflictError("This season has already ended.")
        if now <= board.starts_at:
            raise ConflictError("This season has not started yet.")
        board.ends_at, board.ended_early_at = now, now
        board.save(update_fields=["ends_at", "ended_early_at"])
        Period.objects.filter(board=board, key=board.slug).update(ends_at=now)
        if actor:
            board_act_audit(
                act="board.season_ended",
                board=board.slug,
                actor=actor,
                user=user,
                details={"endsAt": now.isoformat()},
            )
    boards_changed()
    return board


class ActiveBoards:
    """The active boards as this process knows them, re-read at most every
    BOARDS_CACHE_SECONDS (a change made here is seen at once; one made by another
    process within that time), with the ids of the periods it has credited and the rows
    of the periods its sockets show."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boards: list[Board] = []
        self._read_at = float("-inf")
        self._periods: dict[tuple[int, str], int] = {}
        self._rows: dict[tuple[int, str], tuple[float, Period]] = {}

    def all(self) -> list[Board]:
        now = time.monotonic()
        if now - self._read_at > settings.BOARDS_CACHE_SECONDS:
            boards = list(Board.objects.filter(is_active=True))
            if not any(board.slug == GLOBAL for board in boards):
                boards.insert(0, global_board())
            with self._lock:
                self._boards, self._read_at = boards, now
        return self._boards

    def get(self, slug: str) -> Board:
        for board in self.all():
            if board.slug == slug:
                return board
        found = Board.objects.filter(slug=slug, is_active=True).first()
        if found is None:
            raise BoardNotFoundError()
        return found

    def counting(self, action_id: str) -> list[Board]:
        """The boards (other than `global`) that count `action_id`, at most
        BOARDS_MAX_PER_COMPLETION of them (the oldest first)."""
        found = [b for b in self.all() if b.slug != GLOBAL and b.counts(action_id)]
        return found[: settings.BOARDS_MAX_PER_COMPLETION]

    def period_id(self, board: Board, span: Span) -> int:
        """The id of `board`'s period `span`, its row created on first use."""
        key = (board.pk, span.key)
        found = self._periods.get(key)
        if found is None:
            found = period_row(board, span).pk
            with self._lock:
                if len(self._periods) > 10_000:
                    self._periods = {}
                self._periods[key] = found
        return found

    def period_recent(self, board: Board, span: Span) -> Period | None:
        """The row of `board`'s period `span` as read at most BOARDS_CACHE_SECONDS ago
        (None: it has none yet). For the sockets' pushes, several a second a board: a
        close or a revision shows in them that much later (a change made in this
        process, at once)."""
        key, now = (board.pk, span.key), time.monotonic()
        hit = self._rows.get(key)
        if hit is not None and now - hit[0] <= settings.BOARDS_CACHE_SECONDS:
            return hit[1]
        row = Period.objects.filter(board=board, key=span.key).first()
        if row is not None:
            with self._lock:
                if len(self._rows) > 1_000:
                    self._rows = {}
                self._rows[key] = (now, row)
        return row

    def forget(self) -> None:
        with self._lock:
            self._read_at = float("-inf")
            self._periods = {}
            self._rows = {}


active_boards = ActiveBoards()


def boards_changed() -> None:
    """A board was saved: this process reads the boards again (after commit)."""
    transaction.on_commit(active_boards.forget)


def global_board() -> Board:
    """The board `global`, which always exists (its migration creates it; so does this,
    should its row be gone) and is always active."""
    board, _ = Board.objects.get_or_create(
        slug=GLOBAL, defaults={"title": "All time", "period": Board.Period.ALL_TIME}
    )
    if not board.is_active:
        Board.objects.filter(pk=board.pk).update(is_active=True)
        board.is_active = True
    return board


def period_row(board: Board, span: Span) -> Period:
    """The row of `board`'s period `span` (created when missing; a concurrent create of
    the same period is harmless)."""
    period, _ = Period.objects.get_or_create(
        board=board,
        key=span.key,
        defaults={"starts_at": span.starts_at, "ends_at": span.ends_at},
    )
    return period


def current_span(board: Board, now: datetime | None = None) -> Span | None:
    return span_at(board.rule, now or timezone.now())


def rule_of(board: Board) -> PeriodRule:
    return board.rule
