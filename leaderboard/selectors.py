"""Ranking reads: from the Redis index, or from PostgreSQL in the same order when the
index is unavailable (embedded default, or Redis down) or cold (lost or never built: the
read also starts a rebuild)."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, TypedDict

from django.conf import settings
from django.db.models import Max, Q

from accounts.models import User
from core import metrics
from leaderboard.index import IndexColdError, IndexEntry, PageAhead, RedisIndex, version_floor
from leaderboard.rebuild import leaderboard_index_cold
from scoreboard.models import ScoreEntry

logger = logging.getLogger(__name__)


class BoardEntry(TypedDict):
    rank: int
    userId: str
    username: str
    score: int


def _index() -> RedisIndex | None:
    return None if settings.EMBEDDED else RedisIndex()


def _as_entry(entry: IndexEntry) -> BoardEntry:
    # Not dataclasses.asdict(): it deep-copies, and cost more than the Redis call.
    return {
        "rank": entry.rank,
        "userId": entry.user_id,
        "username": entry.username,
        "score": entry.score,
    }


def _index_failed(exc: Exception) -> None:
    metrics.leaderboard_cache.labels("miss").inc()
    metrics.backing_service_errors.labels("redis").inc()
    logger.warning("leaderboard index unavailable, reading PostgreSQL: %s", exc)


def _index_cold() -> None:
    # Counted per read; logged once, by the process that starts the rebuild.
    metrics.leaderboard_cache.labels("cold").inc()
    try:
        leaderboard_index_cold()
    except Exception as exc:
        _index_failed(exc)


def _db_page(offset: int, limit: int) -> list[BoardEntry]:
    rows = User.objects.ranked().values_list("id", "username", "score")[offset : offset + limit]
    return [
        {"rank": offset + i + 1, "userId": str(uid), "username": name, "score": score}
        for i, (uid, name, score) in enumerate(rows)
    ]


def _db_version() -> int:
    if settings.EMBEDDED:
        return ScoreEntry.objects.aggregate(v=Max("id"))["v"] or 0
    # Without the index, the clock in microseconds: the index's version is the clock at
    # its last change (leaderboard/index.py), so this is above every version answered
    # before, and the next page read from the index is raised above it (`version_floor`).
    version = time.time_ns() // 1000
    version_floor.answered(version)
    return version


def leaderboard_page_ahead(*, offset: int, limit: int) -> PageAhead | None:
    """Queue the read of ranks offset+1..offset+limit in the enclosing `redis_batch()`
    (sent when the block ends, with the other commands queued there), for
    `leaderboard_page(ahead=...)` to answer after it. None without an index."""
    index = _index()
    return None if index is None else index.page_ahead(offset=offset, limit=limit)


def leaderboard_page(
    *, offset: int, limit: int, index_only: bool = False, ahead: PageAhead | None = None
) -> dict[str, Any]:
    """Ranks offset+1..offset+limit with the total of ranked users and a version.

    With `index_only`, a cold index raises `IndexColdError` (after starting a rebuild) instead
    of answering from PostgreSQL. `ahead`: this page, already read in the caller's round
    trip (`leaderboard_page_ahead`).
    """
    index = _index()
    if index is not None:
        try:
            entries, total, version = index.page(offset=offset, limit=limit, ahead=ahead)
            metrics.leaderboard_cache.labels("hit").inc()
            return {"entries": [_as_entry(e) for e in entries], "total": total, "version": version}
        except IndexColdError:
            _index_cold()
            if index_only:
                raise
        except Exception as exc:
            _index_failed(exc)
    return {
        "entries": _db_page(offset, limit),
        "total": User.objects.rankable().count(),
        "version": _db_version(),
    }


def leaderboard_top(*, n: int, index_only: bool = False) -> list[BoardEntry]:
    return leaderboard_page(offset=0, limit=n, index_only=index_only)["entries"]


def _db_rank(user_id: uuid.UUID) -> tuple[int, int] | None:
    row = (
        User.objects.rankable().filter(pk=user_id).values("score", "score_reached_at", "id").first()
    )
    if row is None:
        return None
    ahead = (
        User.objects.rankable()
        .filter(
            Q(score__gt=row["score"])
            | Q(score=row["score"], score_reached_at__lt=row["score_reached_at"])
            | Q(score=row["score"], score_reached_at=row["score_reached_at"], id__lt=row["id"])
        )
        .count()
    )
    return ahead + 1, row["score"]


def leaderboard_rank_and_score(*, user_id: uuid.UUID) -> tuple[int, int] | None:
    """(1-based rank, score) in O(log n) from the index, or None when unranked."""
    index = _index()
    if index is not None:
        try:
            found = index.rank(user_id=user_id)
            metrics.leaderboard_cache.labels("hit").inc()
            return found
        except IndexColdError:
            _index_cold()
        except Exception as exc:
            _index_failed(exc)
    return _db_rank(user_id)


def leaderboard_rank_of(*, user_id: uuid.UUID) -> int | None:
    """1-based rank of a user, or None when the user is not ranked."""
    found = leaderboard_rank_and_score(user_id=user_id)
    return found[0] if found else None


def leaderboard_around(*, user: User, radius: int) -> dict[str, Any]:
    """The user's rank and score, and the entries within `radius` ranks of them."""
    found = leaderboard_rank_and_score(user_id=user.pk)
    if found is None:
        return {"me": {"rank": None, "score": user.score}, "entries": []}
    rank, score = found
    offset = max(0, rank - 1 - radius)
    page = leaderboard_page(offset=offset, limit=rank - offset + radius)
    return {"me": {"rank": rank, "score": score}, "entries": page["entries"]}


def user_profile(*, user: User) -> dict[str, Any]:
    """The /me payload: who the user is, their score and rank."""
    return {
        "id": user.pk,
        "username": user.username,
        "score": user.score,
        "rank": leaderboard_rank_of(user_id=user.pk),
        "dateJoined": user.date_joined,
    }


@dataclass(frozen=True)
class IndexMismatch:
    """A user the ranking index holds otherwise than PostgreSQL says it should."""

    username: str
    expected: int | str | None  # the score to rank, None for "not ranked"
    found: int | str | None


def leaderboard_index_mismatches() -> list[IndexMismatch]:
    """Every user whose index entry differs from their stored total (or the whole index,
    when it is cold). Raises `IndexUnavailableError` when Redis does not answer."""
    users = list(User.objects.values_list("id", "username", "score", "is_active", "is_banned"))
    index = RedisIndex()
    try:
        found = {str(uid): index.rank(user_id=uid) for uid, *_ in users}
    except IndexColdError:
        return [IndexMismatch("(the whole index)", "built", "cold: never built or lost its data")]
    except Exception as exc:
        raise IndexUnavailableError(str(exc)) from exc
    problems = []
    for uid, name, score, active, banned in users:
        expected = score if active and not banned and score > 0 else None
        ranked = found[str(uid)]
        got = ranked[1] if ranked else None
        if expected != got:
            problems.append(IndexMismatch(name, expected, got))
    return problems


class IndexUnavailableError(Exception):
    """The ranking index could not be read (Redis down)."""
