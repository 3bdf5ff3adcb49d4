"""What the boards' endpoints and sockets answer: a board's description, the period a
`period` parameter names, and that period's page, ranks and history. The board
`global` answers from the global index (leaderboard/selectors.py), as its aliases do."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from core.errors import InvalidInputError
from leaderboard import selectors
from leaderboard.boards import PeriodNotFoundError, active_boards, period_row
from leaderboard.closing import close_due_when_embedded
from leaderboard.index import PageAhead
from leaderboard.models import GLOBAL, Board, Period, Standing
from leaderboard.period_reads import period_around, period_page, period_page_ahead, period_rank
from leaderboard.periods import PeriodKeyError, Span, span_at, span_before, span_of_key


@dataclass(frozen=True)
class Named:
    """The period a request names: its row (None for `global`, which has none)."""

    board: Board
    span: Span
    period: Period | None

    def payload(self) -> dict[str, Any]:
        period = self.period
        return {
            "key": self.span.key,
            "startsAt": self.span.starts_at,
            "endsAt": self.span.ends_at,
            "state": period.state if period else Period.State.OPEN,
            "revision": period.revision if period else 0,
        }


def span_payload(span: Span | None) -> dict[str, Any] | None:
    if span is None:
        return None
    return {"key": span.key, "startsAt": span.starts_at, "endsAt": span.ends_at}


def current_of(board: Board, now: datetime) -> Span | None:
    """The board's running period (None for a season before or after its dates)."""
    return span_at(board.rule, now)


def board_payload(board: Board, *, now: datetime) -> dict[str, Any]:
    current = current_of(board, now)
    next_reset = current.ends_at if current else None
    if board.period == Board.Period.SEASON and board.starts_at and now < board.starts_at:
        next_reset = board.starts_at
    return {
        "slug": board.slug,
        "title": board.title,
        "period": board.period,
        "timezone": board.timezone,
        "weekStartsOn": board.week_starts_on,
        "dayStartsAt": board.day_starts_at.strftime("%H:%M"),
        "actionTypes": list(board.action_types) or None,
        "startsAt": board.starts_at,
        "endsAt": board.ends_at,
        "current": span_payload(current),
        "nextResetAt": next_reset,
    }


def boards_list(*, now: datetime | None = None) -> dict[str, Any]:
    close_due_when_embedded()
    now = now or timezone.now()
    return {
        "boards": [board_payload(b, now=now) for b in active_boards.all()],
        "serverTime": now,
    }


def previous_of(board: Board, now: datetime) -> Span | None:
    if board.period in (Board.Period.ALL_TIME, Board.Period.SEASON):
        return None
    current = current_of(board, now)
    return span_before(board.rule, current) if current else None


def board_detail(slug: str, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or timezone.now()
    board = active_boards.get(slug)
    previous = previous_of(board, now)
    shown = None
    if previous is not None:
        row = Period.objects.filter(board=board, key=previous.key).first()
        shown = {
            **(span_payload(previous) or {}),
            "state": row.state if row else Period.State.CLOSING,
        }
    return {**board_payload(board, now=now), "previous": shown, "serverTime": now}


def period_named(
    slug: str, name: str, *, now: datetime | None = None, recent: bool = False
) -> Named:
    """The period `name` of board `slug`: `current`, `previous` or a key. Raises 404
    `board_not_found` / `period_not_found`, or 400 for a key this board cannot have.
    `recent`: the period's row may be up to BOARDS_CACHE_SECONDS old
    (`ActiveBoards.period_recent`, for the sockets' pushes)."""
    close_due_when_embedded()
    now = now or timezone.now()
    board = active_boards.get(slug)
    rule = board.rule
    if name == "current":
        span = (
            span_of_key(rule, board.slug)
            if board.period == Board.Period.SEASON
            else current_of(board, now)
        )
    elif name == "previous":
        span = previous_of(board, now)
    else:
        try:
            span = span_of_key(rule, name)
        except PeriodKeyError as exc:
            raise InvalidInputError("Malformed period.", details={"period": [str(exc)]}) from exc
    if span is None:
        raise PeriodNotFoundError()
    if board.slug == GLOBAL:
        return Named(board, span, None)
    if span.starts_at is not None and span.starts_at > now:
        raise PeriodNotFoundError("This period has not started yet.")
    period = (
        active_boards.period_recent(board, span)
        if recent
        else Period.objects.filter(board=board, key=span.key).first()
    )
    if period is None:
        held = name in ("current", "previous") or span == current_of(board, now)
        if not held:
            raise PeriodNotFoundError()
        period = period_row(board, span)
    return Named(board, span, period)


def named_page_ahead(named: Named, *, offset: int, limit: int) -> PageAhead | None:
    """Queue `named_page`'s Redis read in the enclosing `redis_batch()`, for
    `named_page(ahead=...)` (several boards' pages in one round trip)."""
    if named.period is None:
        return selectors.leaderboard_page_ahead(offset=offset, limit=limit)
    return period_page_ahead(named.period, offset=offset, limit=limit)


def named_page(
    named: Named, *, offset: int, limit: int, ahead: PageAhead | None = None
) -> dict[str, Any]:
    if named.period is None:
        page = selectors.leaderboard_page(offset=offset, limit=limit, ahead=ahead)
    else:
        page = period_page(named.period, offset=offset, limit=limit, ahead=ahead)
    return {
        "board": named.board.slug,
        "period": named.payload(),
        **page,
        "generatedAt": timezone.now(),
    }


def named_around(named: Named, *, user: Any, radius: int) -> dict[str, Any]:
    if named.period is None:
        found = selectors.leaderboard_around(user=user, radius=radius)
    else:
        found = period_around(named.period, user_id=user.pk, radius=radius)
    return {"board": named.board.slug, "period": named.payload(), **found}


def named_rank(named: Named, *, user_id: uuid.UUID) -> tuple[int, int] | None:
    if named.period is None:
        return selectors.leaderboard_rank_and_score(user_id=user_id)
    return period_rank(named.period, user_id=user_id)


def closed_periods(slug: str, *, before: str | None, limit: int) -> dict[str, Any]:
    """Closed periods of a board, newest first, each with its top 3."""
    board = active_boards.get(slug)
    periods = Period.objects.filter(board=board, state=Period.State.CLOSED)
    if before:
        try:
            span = span_of_key(board.rule, before)
        except PeriodKeyError as exc:
            raise InvalidInputError("Malformed period.", details={"before": [str(exc)]}) from exc
        if span.starts_at is not None:
            periods = periods.filter(starts_at__lt=span.starts_at)
    rows = list(periods.order_by("-starts_at")[:limit])
    tops: dict[int, list[dict[str, Any]]] = {p.pk: [] for p in rows}
    for pid, rank, uid, name, score, revision in Standing.objects.filter(
        period__in=rows, rank__lte=3
    ).values_list("period_id", "rank", "user_id", "username", "score", "revision"):
        period = next(p for p in rows if p.pk == pid)
        if revision == period.revision:
            tops[pid].append({"rank": rank, "userId": str(uid), "username": name, "score": score})
    return {
        "board": board.slug,
        "periods": [
            {
                "key": p.key,
                "startsAt": p.starts_at,
                "endsAt": p.ends_at,
                "participants": p.participants,
                "revision": p.revision,
                "checksum": p.checksum,
                "closedAt": p.closed_at,
                "top": sorted(tops[p.pk], key=lambda e: e["rank"]),
            }
            for p in rows
        ],
    }
