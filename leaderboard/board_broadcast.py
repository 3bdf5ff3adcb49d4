"""The live boards other than `global` (`/ws/boards/{slug}/`), written once per process.

Each daphne process keeps, per board that has viewers here, the top it last sent and the
period it is in. A turn (on a wake-up after any committed change, at most once per
LEADERBOARD_BROADCAST_INTERVAL_MS, at least once a second, and at each board's next
boundary) reads the top of every watched board's current period (one thread hop and one
Redis round trip for all of them, each page answered "unchanged" without its entries
when nothing moved: `PageMemory`) and, for each board whose top changed, writes one
`leaderboard.update` to this process's viewers of that board. The version is
the period index's, which only grows (a new period's index starts above the old one's:
both follow the Redis clock), so the turns of several processes need no coordination.

At a boundary each process sends its viewers `leaderboard.rollover` (the period that
closed, the one that began) and then the snapshot of the new period, from the clock:
the closer (which writes the standings within 60 s) is not waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from core import metrics
from core.redis_batch import redis_batch
from leaderboard import events
from leaderboard.board_reads import (
    Named,
    current_of,
    named_page,
    named_page_ahead,
    period_named,
    span_payload,
)
from leaderboard.boards import BoardNotFoundError, PeriodNotFoundError, active_boards
from leaderboard.index import PageAhead
from leaderboard.periods import Span
from leaderboard.sockets import LocalViewers

logger = logging.getLogger(__name__)

_POLL_SECONDS = 1.0


@dataclass
class BoardView:
    """What this process last showed the viewers of one board."""

    slug: str
    viewers: LocalViewers = field(default_factory=LocalViewers)
    span: Span | None = None
    top: list[Mapping[str, Any]] = field(default_factory=list)
    version: int = 0


def _period_frame(span: Span | None) -> dict[str, Any] | None:
    if span is None:
        return None
    return {"key": span.key, "endsAt": span.ends_at.isoformat() if span.ends_at else None}


def _current(slug: str) -> tuple[Span | None, Named | None]:
    """The period a board's sockets track (None outside a season's dates: an ended
    season shows its final standings) and the period they are shown, if any."""
    board = active_boards.get(slug)
    tracked = current_of(board, timezone.now())
    try:
        return tracked, period_named(slug, "current", recent=True)
    except PeriodNotFoundError:  # a season before its start
        return tracked, None


def _top(
    tracked: Span | None, named: Named | None, ahead: PageAhead | None = None
) -> tuple[Span | None, Span | None, list[Mapping[str, Any]], int]:
    if named is None:
        return tracked, None, [], 0
    page = named_page(named, offset=0, limit=settings.LEADERBOARD_TOP_N, ahead=ahead)
    return tracked, named.span, page["entries"], int(page["version"])


def board_top(slug: str) -> tuple[Span | None, Span | None, list[Mapping[str, Any]], int]:
    """A board's current period as its sockets show it: the period it tracks, the
    period shown, the top and its version. Runs in a thread (it may read PostgreSQL)."""
    return _top(*_current(slug))


def board_snapshot(slug: str) -> tuple[str, Span | None, list[Mapping[str, Any]], int]:
    """The snapshot frame of a board's current period, with the period it tracks, the
    top and the version it showed (`board_top`). Runs in a thread."""
    tracked, shown, entries, version = board_top(slug)
    text = events.dumps(
        {
            "type": "leaderboard.snapshot",
            "board": slug,
            "period": _period_frame(shown),
            "entries": entries,
            "version": version,
        }
    )
    return text, tracked, entries, version


class BoardBroadcaster:
    """This process's loop over the boards its sockets watch (started on first join)."""

    def __init__(self) -> None:
        self.boards: dict[str, BoardView] = {}
        self.task: asyncio.Task[None] | None = None
        self.woken: asyncio.Event | None = None
        self.last_turn = float("-inf")

    def join(self, slug: str, key: int, send: Any, server_send: Any, user_id: str | None) -> None:
        view = self.boards.setdefault(slug, BoardView(slug))
        view.viewers.add(key, send, server_send, user_id=user_id)
        loop = asyncio.get_running_loop()
        if self.task is None or self.task.done() or self.task.get_loop() is not loop:
            self.woken = asyncio.Event()
            self.task = loop.create_task(self.run(self.woken))

    def leave(self, slug: str, key: int) -> None:
        view = self.boards.get(slug)
        if view is not None:
            view.viewers.discard(key)
            if not len(view.viewers):
                del self.boards[slug]

    def remember(
        self, slug: str, span: Span | None, top: list[Mapping[str, Any]], version: int
    ) -> None:
        """A snapshot was sent: later updates are computed against the newest shown."""
        view = self.boards.get(slug)
        if view is not None and version >= view.version:
            view.span, view.top, view.version = span, top, version

    def wake(self) -> None:
        if self.woken is not None:
            self.woken.set()

    def wake_threadsafe(self) -> None:
        task, woken = self.task, self.woken
        if task is not None and woken is not None and not task.done():
            with contextlib.suppress(RuntimeError):
                task.get_loop().call_soon_threadsafe(woken.set)

    async def deliver_to_user(self, user_id: str, text: str) -> None:
        for view in list(self.boards.values()):
            await view.viewers.deliver_to_user(user_id, text)

    def _next_boundary(self) -> float:
        """Seconds until the earliest end of a watched period (or the poll)."""
        now = timezone.now()
        wait = _POLL_SECONDS
        for view in self.boards.values():
            if view.span is not None and view.span.ends_at is not None:
                wait = min(wait, max(0.0, (view.span.ends_at - now).total_seconds()))
        return wait

    async def run(self, woken: asyncio.Event) -> None:
        interval = settings.LEADERBOARD_BROADCAST_INTERVAL_MS / 1000
        while self.boards:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), timeout=self._next_boundary())
            woken.clear()
            pause = self.last_turn + interval - time.monotonic()
            if pause > 0:
                await asyncio.sleep(pause)
            self.last_turn = time.monotonic()
            try:
                turns = await sync_to_async(self.turn, thread_sensitive=False)(
                    list(self.boards.values())
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                metrics.backing_service_errors.labels("broadcaster").inc()
                logger.exception("boards' broadcast turn failed")
                continue
            for view, frames in turns:
                if frames:
                    await view.viewers.deliver(*frames)

    def turn(self, views: list[BoardView]) -> list[tuple[BoardView, list[str]]]:
        """Every watched board's frames for this turn, in one thread hop (runs in a
        thread), with the pages of all of them read in one Redis round trip."""
        close_old_connections()
        turns: list[tuple[BoardView, list[str]]] = []
        due: list[tuple[BoardView, Span | None, Named | None]] = []
        for view in views:
            try:
                frames = self._rollover(view)
                if frames is None:
                    due.append((view, *_current(view.slug)))
                else:
                    turns.append((view, frames))
            except Exception:
                _turn_failed(view)
        with redis_batch():
            aheads = [
                named_page_ahead(named, offset=0, limit=settings.LEADERBOARD_TOP_N)
                if named is not None
                else None
                for _, _, named in due
            ]
        for (view, tracked, named), ahead in zip(due, aheads, strict=True):
            try:
                turns.append((view, self._update(view, _top(tracked, named, ahead))))
            except Exception:
                _turn_failed(view)
        return turns

    def _rollover(self, view: BoardView) -> list[str] | None:
        """The frames of a boundary the board's viewers have not seen yet (the rollover
        and the new period's snapshot); [] when the board is gone or outside its dates;
        None when the turn is an ordinary one (`_update`)."""
        try:
            board = active_boards.get(view.slug)
        except BoardNotFoundError:
            return []
        now = timezone.now()
        current = current_of(board, now)
        shown = view.span
        if (
            shown is not None
            and shown.ends_at is not None
            and shown.ends_at <= now
            and (current is None or current.key != shown.key)
        ):
            frames = [_rollover(view.slug, shown, current)]
            text, span, top, version = board_snapshot(view.slug)
            view.span, view.top, view.version = span, top, max(version, view.version)
            frames.append(text)
            return frames
        return [] if current is None else None

    def _update(
        self, view: BoardView, found: tuple[Span | None, Span | None, list[Mapping[str, Any]], int]
    ) -> list[str]:
        """The update frame of a board whose top (or period) changed, if it did."""
        span, _, top, version = found
        frames: list[str] = []
        if (top != view.top and version >= view.version) or span != view.span:
            frames.append(
                events.dumps(
                    {
                        "type": "leaderboard.update",
                        "board": view.slug,
                        "period": _period_frame(span),
                        "entries": top,
                        "changes": events.top_changes(top, view.top),
                        "version": version,
                    }
                )
            )
            view.top, view.version = top, version
        view.span = span
        return frames


def _turn_failed(view: BoardView) -> None:
    metrics.backing_service_errors.labels("broadcaster").inc()
    logger.exception("board %s: broadcast turn failed", view.slug)


def _rollover(slug: str, closed: Span, current: Span | None) -> str:
    def shown(span: Span | None) -> dict[str, Any] | None:
        payload = span_payload(span)
        if payload is None:
            return None
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in payload.items()
        }

    return events.dumps(
        {
            "type": "leaderboard.rollover",
            "board": slug,
            "closed": shown(closed),
            "current": shown(current),
        }
    )


board_broadcaster = BoardBroadcaster()
