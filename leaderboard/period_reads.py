"""Reads of a board's period: a held period (open or closing) from its Redis index, or
from PostgreSQL in the same order while the index is cold (the read starts its rebuild)
or Redis is down; a closed period from its standings (current revision)."""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from django.conf import settings
from django.db.models import Q

from core import metrics
from leaderboard.index import IndexColdError, PageAhead
from leaderboard.models import Period, PeriodScore, Standing
from leaderboard.period_index import period_index, period_index_cold
from leaderboard.selectors import BoardEntry

logger = logging.getLogger(__name__)


def _ranked(period_id: int) -> Any:
    return PeriodScore.objects.filter(
        period_id=period_id, score__gt=0, user__is_active=True, user__is_banned=False
    )


def _ordered(period_id: int) -> Any:
    return _ranked(period_id).order_by("-score", "reached_at", "user_id")


def _cold(period_id: int) -> None:
    metrics.leaderboard_cache.labels("cold").inc()
    try:
        period_index_cold(period_id)
    except Exception as exc:
        _failed(exc)


def _failed(exc: Exception) -> None:
    metrics.leaderboard_cache.labels("miss").inc()
    metrics.backing_service_errors.labels("redis").inc()
    logger.warning("period index unavailable, reading PostgreSQL: %s", exc)


def _entries(rows: Any, offset: int) -> list[BoardEntry]:
    return [
        {"rank": offset + i + 1, "userId": str(uid), "username": name, "score": score}
        for i, (uid, name, score) in enumerate(rows)
    ]


def period_page_ahead(period: Period, *, offset: int, limit: int) -> PageAhead | None:
    """Queue the read of `period_page` in the enclosing `redis_batch()`, for
    `period_page(ahead=...)`; None when the page is not read from Redis."""
    if settings.EMBEDDED or period.state == Period.State.CLOSED:
        return None
    return period_index(period.pk).page_ahead(offset=offset, limit=limit)


def period_page(
    period: Period,
    *,
    offset: int,
    limit: int,
    index_only: bool = False,
    ahead: PageAhead | None = None,
) -> dict[str, Any]:
    """{entries, total, version} of ranks offset+1..offset+limit of `period`. `ahead`:
    this page, already read in the caller's round trip (`period_page_ahead`)."""
    if period.state == Period.State.CLOSED:
        rows = Standing.objects.filter(period=period, revision=period.revision).order_by("rank")
        page = rows.values_list("user_id", "username", "score")[offset : offset + limit]
        return {
            "entries": _entries(page, offset),
            "total": period.participants,
            "version": period.revision,
        }
    if not settings.EMBEDDED:
        try:
            entries, total, version = period_index(period.pk).page(
                offset=offset, limit=limit, ahead=ahead
            )
            metrics.leaderboard_cache.labels("hit").inc()
            return {
                "entries": [
                    {"rank": e.rank, "userId": e.user_id, "username": e.username, "score": e.score}
                    for e in entries
                ],
                "total": total,
                "version": version,
            }
        except IndexColdError:
            _cold(period.pk)
            if index_only:
                raise
        except Exception as exc:
            if index_only:
                raise
            _failed(exc)
    rows = _ordered(period.pk).values_list("user_id", "user__username", "score")
    # The clock in microseconds, as the index's version is (see leaderboard/index.py).
    return {
        "entries": _entries(rows[offset : offset + limit], offset),
        "total": _ranked(period.pk).count(),
        "version": time.time_ns() // 1000,
    }


def period_rank(period: Period, *, user_id: uuid.UUID) -> tuple[int, int] | None:
    """(1-based rank, score) of a user in `period`, or None when unranked there."""
    if period.state == Period.State.CLOSED:
        row = (
            Standing.objects.filter(period=period, revision=period.revision, user_id=user_id)
            .values_list("rank", "score")
            .first()
        )
        return (int(row[0]), int(row[1])) if row else None
    if not settings.EMBEDDED:
        try:
            found = period_index(period.pk).rank(user_id=user_id)
            metrics.leaderboard_cache.labels("hit").inc()
            return found
        except IndexColdError:
            _cold(period.pk)
        except Exception as exc:
            _failed(exc)
    return period_rank_from_db(period.pk, user_id=user_id)


def period_rank_from_db(period_id: int, *, user_id: uuid.UUID) -> tuple[int, int] | None:
    row = _ranked(period_id).filter(user_id=user_id).values("score", "reached_at").first()
    if row is None:
        return None
    score, reached = row["score"], row["reached_at"]
    ahead = (
        _ranked(period_id)
        .filter(
            Q(score__gt=score)
            | Q(score=score, reached_at__lt=reached)
            | Q(score=score, reached_at=reached, user_id__lt=user_id)
        )
        .count()
    )
    return ahead + 1, int(score)


def period_score_of(period: Period, *, user_id: uuid.UUID) -> int:
    """The user's points in `period` (ranked or not)."""
    if period.state == Period.State.CLOSED:
        row = Standing.objects.filter(
            period=period, revision=period.revision, user_id=user_id
        ).values_list("score", flat=True)
        return int(row.first() or 0)
    found = PeriodScore.objects.filter(period=period, user_id=user_id).values_list(
        "score", flat=True
    )
    return int(found.first() or 0)


def period_around(period: Period, *, user_id: uuid.UUID, radius: int) -> dict[str, Any]:
    found = period_rank(period, user_id=user_id)
    if found is None:
        return {
            "me": {"rank": None, "score": period_score_of(period, user_id=user_id)},
            "entries": [],
        }
    rank, score = found
    offset = max(0, rank - 1 - radius)
    page = period_page(period, offset=offset, limit=rank - offset + radius)
    return {"me": {"rank": rank, "score": score}, "entries": page["entries"]}


def period_top(period: Period, *, n: int = 3) -> list[BoardEntry]:
    entries: list[BoardEntry] = period_page(period, offset=0, limit=n)["entries"]
    return entries


def entry_boards(*, entry_id: int, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """The boards a ledger entry was credited to, with the user's score and rank there now
    (a replayed completion's `boards`, or the response's when Redis did not answer)."""
    periods = Period.objects.filter(credits__entry_id=entry_id).select_related("board")
    found = []
    for period in periods.order_by("board__created_at", "board_id"):
        ranked = period_rank(period, user_id=user_id)
        found.append(
            {
                "board": period.board.slug,
                "period": period.key,
                "score": period_score_of(period, user_id=user_id),
                "rank": ranked[0] if ranked else None,
            }
        )
    return found
