"""Closing periods: final standings from the credits, a checksum anyone can recompute,
and a new revision when a reversal or a ban changes a closed period.

The close, in two short transactions (docs/boards.md has the argument):

1. Once a period has ended (plus BOARDS_CLOSE_GRACE_SECONDS), take its row lock
   exclusively (FOR UPDATE) and mark it `closing`. The lock waits for every transaction
   that holds the share lock a credit takes (leaderboard/credits.py): every completion
   accepted in the period and still in flight commits first. After that no credit can
   join it: a writer that finds it `closing` is refused and retries.
2. Write the standings from the credits in one INSERT ... SELECT (rank by period score,
   then whoever reached it first, then user id; banned users left out), its SHA-256, the
   revision row, and mark it `closed`; then drop its Redis index.

Idempotent and safe to run concurrently: each step re-reads the state under the lock.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from core.dbwait import wait_budget
from core.enqueue import task_enqueue
from leaderboard.boards import active_boards, period_row
from leaderboard.models import GLOBAL, Board, Period, PeriodCredit, PeriodRevision, Standing
from leaderboard.period_index import period_index_cold, period_index_drop, period_index_is_cold
from leaderboard.periods import span_at, spans_ended
from scoreboard.models import ScoreEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Closed:
    board: str
    key: str
    revision: int
    participants: int
    checksum: str


def standing_line(rank: int, user_id: object, score: int, reached_at: datetime) -> bytes:
    """One standings row as the checksum hashes it (docs/boards.md): rank, user id,
    score and reached-at (UTC, microseconds), tab-separated, newline-terminated."""
    at = reached_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"{rank}\t{user_id}\t{score}\t{at}\n".encode()


def checksum_of(rows: Iterable[tuple[int, object, int, datetime]]) -> str:
    digest = hashlib.sha256()
    for rank, user_id, score, reached_at in rows:
        digest.update(standing_line(rank, user_id, score, reached_at))
    return digest.hexdigest()


def _standings_checksum(period_id: int, revision: int) -> tuple[int, str]:
    """(rows, checksum) of stored standings. On PostgreSQL the server formats each line
    (`standing_line`'s format) and a named cursor streams them: parsing a million rows'
    timestamps here cost more than the rest of the close."""
    count, digest = 0, hashlib.sha256()
    if connection.vendor == "postgresql":
        table = Standing._meta.db_table
        with transaction.atomic(), connection.connection.cursor(name="standings") as cursor:
            cursor.itersize = 50_000
            cursor.execute(
                "SELECT rank::text || E'\\t' || user_id::text || E'\\t' || score::text || E'\\t' "  # noqa: S608 - names from the model
                "|| to_char(reached_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                f"|| E'\\n' FROM {table} WHERE period_id = %s AND revision = %s ORDER BY rank",
                [period_id, revision],
            )
            for (line,) in cursor:
                digest.update(line.encode())
                count += 1
        return count, digest.hexdigest()
    rows = (
        Standing.objects.filter(period_id=period_id, revision=revision)
        .order_by("rank")
        .values_list("rank", "user_id", "score", "reached_at")
    )
    for rank, user_id, score, reached_at in rows.iterator(20_000):
        digest.update(standing_line(rank, user_id, score, reached_at))
        count += 1
    return count, digest.hexdigest()


@contextlib.contextmanager
def _long_statements() -> Iterator[None]:
    """Inside the caller's transaction: the close's statements may take longer than a
    request's (BOARDS_CLOSE_STATEMENT_SECONDS instead of DB_STATEMENT_TIMEOUT_MS, the
    client-side bound likewise), and sort in memory. Completions hold none of its locks."""
    seconds = settings.BOARDS_CLOSE_STATEMENT_SECONDS
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL statement_timeout = {int(seconds * 1000)}")
            cursor.execute("SET LOCAL work_mem = '256MB'")
            # One core for the close: parallel workers would take the cores the
            # completions of the new period are answered on.
            cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
    with wait_budget(seconds + 5):
        yield


def _write_standings(period_id: int, revision: int) -> tuple[int, str]:
    """Insert the standings of `period_id` as `revision`, from its credits; (participants,
    checksum)."""
    s, c, u = Standing._meta.db_table, PeriodCredit._meta.db_table, User._meta.db_table
    user_pk = User._meta.pk.column
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {s} (period_id, revision, rank, user_id, username, score, reached_at) "  # noqa: S608 - names from the models
            f"SELECT %s, %s, "
            f"ROW_NUMBER() OVER (ORDER BY SUM(c.delta) DESC, MAX(c.at) ASC, c.user_id ASC), "
            f"c.user_id, u.username, SUM(c.delta), MAX(c.at) "
            f"FROM {c} c JOIN {u} u ON u.{user_pk} = c.user_id "
            f"WHERE c.period_id = %s AND u.is_active = %s AND u.is_banned = %s "
            f"GROUP BY c.user_id, u.username HAVING SUM(c.delta) > 0",
            [period_id, revision, period_id, True, False],
        )
    return _standings_checksum(period_id, revision)


def period_close(period_id: int, *, now: datetime | None = None) -> Closed | None:
    """Close one ended period (see the module's docstring); None when there was nothing
    to do (not ended yet, or closed already, perhaps by a concurrent closer)."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.BOARDS_CLOSE_GRACE_SECONDS)
    with transaction.atomic():
        period = Period.objects.select_for_update().filter(pk=period_id).first()
        if period is None or period.state == Period.State.CLOSED:
            return None
        if period.ends_at is None or period.ends_at + grace > now:
            return None
        if period.state == Period.State.OPEN:
            period.state = Period.State.CLOSING
            period.save(update_fields=["state"])
    with transaction.atomic():
        period = (
            Period.objects.select_for_update(no_key=True)
            .select_related("board")
            .filter(pk=period_id)
            .first()
        )
        if period is None or period.state != Period.State.CLOSING:
            return None
        revision = period.revision + 1
        with _long_statements():
            participants, checksum = _write_standings(period.pk, revision)
        PeriodRevision.objects.create(
            period=period,
            revision=revision,
            participants=participants,
            checksum=checksum,
            cause="closed",
            created_at=now,
        )
        period.state, period.revision = Period.State.CLOSED, revision
        period.participants, period.checksum, period.closed_at = participants, checksum, now
        period.save(update_fields=["state", "revision", "participants", "checksum", "closed_at"])
        transaction.on_commit(lambda: _drop_index(period_id))
        transaction.on_commit(active_boards.forget)  # the rows this process shows
    logger.info(
        "closed %s %s: %s participants, checksum %s",
        period.board.slug,
        period.key,
        participants,
        checksum,
    )
    return Closed(period.board.slug, period.key, revision, participants, checksum)


def _drop_index(period_id: int) -> None:
    if settings.EMBEDDED:
        return
    try:
        period_index_drop(period_id)
    except Exception:
        logger.warning("could not drop the index of closed period %s", period_id)


def periods_close_due(*, now: datetime | None = None, board: str | None = None) -> list[Closed]:
    """Close every period that has ended, on every board (or `board`), oldest first, also
    those that ended while nothing ran; then make sure each active board's current period
    exists and its index is warm. What the periodic task and `close_periods` run."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.BOARDS_CLOSE_GRACE_SECONDS)
    # Every board: one deactivated while a period ran still closes it (it only stops
    # counting new completions).
    boards = Board.objects.exclude(slug=GLOBAL)
    if board is not None:
        boards = boards.filter(slug=board)
    closed: list[Closed] = []
    for each in boards:
        if each.period != Board.Period.ALL_TIME and (
            each.is_active or Period.objects.filter(board=each).exclude(state="closed").exists()
        ):
            last = (
                Period.objects.filter(board=each, state=Period.State.CLOSED)
                .order_by("-ends_at")
                .values_list("ends_at", flat=True)
                .first()
            )
            since = max(last or each.created_at, each.created_at - timedelta(days=400))
            for span in spans_ended(each.rule, since, now - grace):
                period_row(each, span)
            due = Period.objects.filter(board=each, ends_at__lte=now - grace).exclude(
                state=Period.State.CLOSED
            )
            for period in due.order_by("ends_at"):
                done = period_close(period.pk, now=now)
                if done is not None:
                    closed.append(done)
        if each.is_active:
            _warm_current(each, now)
    return closed


def _warm_current(board: Board, now: datetime) -> None:
    """The current period's row, and its index built (a new period's is empty: the first
    completion after the boundary then finds it warm)."""
    span = span_at(board.rule, now)
    if span is None:
        return
    period = period_row(board, span)
    if settings.EMBEDDED:
        return
    try:
        if period_index_is_cold(period.pk):
            period_index_cold(period.pk)
    except Exception:
        logger.warning("could not warm the index of %s %s", board.slug, span.key)


def period_revise(period_id: int, *, cause: str) -> int | None:
    """Recompute a closed period's standings; when they changed (a reversal or a ban
    touched it), store them as the next revision with `cause`. Returns the new revision,
    None when unchanged or not closed, -1 while it is still closing (retry later)."""
    with transaction.atomic():
        period = Period.objects.select_for_update(no_key=True).filter(pk=period_id).first()
        if period is None or period.state == Period.State.OPEN:
            return None
        if period.state == Period.State.CLOSING:
            return -1
        revision = period.revision + 1
        saved = transaction.savepoint()
        with _long_statements():
            participants, checksum = _write_standings(period.pk, revision)
        if checksum == period.checksum:
            transaction.savepoint_rollback(saved)
            return None
        transaction.savepoint_commit(saved)
        PeriodRevision.objects.create(
            period=period,
            revision=revision,
            participants=participants,
            checksum=checksum,
            cause=cause[:255],
        )
        period.revision, period.participants, period.checksum = revision, participants, checksum
        period.save(update_fields=["revision", "participants", "checksum"])
        transaction.on_commit(active_boards.forget)
    logger.info("period %s: revision %s (%s)", period_id, revision, cause)
    return revision


def period_revise_later(period_id: int, *, cause: str) -> None:
    """Queue `period_revise` (after commit; eager in the embedded default)."""
    try:
        task_enqueue("leaderboard.revise_period", period_id=period_id, cause=cause)
    except Exception:
        logger.warning(
            "could not queue the revision of period %s; `close_periods --revise` repairs it",
            period_id,
        )


def closed_periods_of_user(user_id: uuid.UUID) -> list[int]:
    """The closed (or closing) periods a user has credits in: a ban or an unban of them
    changes those standings."""
    return list(
        Period.objects.filter(credits__user_id=user_id)
        .exclude(state=Period.State.OPEN)
        .values_list("id", flat=True)
        .distinct()
    )


def standings_from_ledger(period: Period) -> list[tuple[int, object, int, datetime]]:
    """The period's standings recomputed from the ledger alone (not from its credits):
    the completions of the board's action types accepted in [startsAt, endsAt), less
    their reversals, per ranked user. Equal to the closed standings for a board that was
    active through the whole period (check_consistency and the tests compare them)."""
    board = period.board
    entries = ScoreEntry.objects.filter(reason=ScoreEntry.Reason.COMPLETION)
    if period.starts_at is not None:
        entries = entries.filter(created_at__gte=period.starts_at)
    if period.ends_at is not None:
        entries = entries.filter(created_at__lt=period.ends_at)
    if board.action_types:
        entries = entries.filter(action_id__in=board.action_types)
    totals: dict[object, list[Any]] = {}
    for user_id, delta, at in entries.values_list("user_id", "delta", "created_at").iterator(
        20_000
    ):
        total = totals.setdefault(user_id, [0, at])
        total[0] += delta
        total[1] = max(total[1], at)
    reversals = ScoreEntry.objects.filter(
        reason=ScoreEntry.Reason.REVERSAL, reverses__in=entries
    ).values_list("user_id", "delta", "created_at")
    for user_id, delta, at in reversals.iterator(20_000):
        total = totals.setdefault(user_id, [0, at])
        total[0] += delta
        total[1] = max(total[1], at)
    ranked = set(
        User.objects.filter(pk__in=list(totals), is_active=True, is_banned=False).values_list(
            "pk", flat=True
        )
    )
    rows = sorted(
        ((uid, score, at) for uid, (score, at) in totals.items() if uid in ranked and score > 0),
        key=lambda row: (-row[1], row[2], str(row[0])),
    )
    return [(i + 1, uid, score, at) for i, (uid, score, at) in enumerate(rows)]


class _EmbeddedCloser:
    """The embedded default runs no Celery beat: there, reads of the boards close what
    has ended, at most once per BOARDS_CLOSE_EVERY_SECONDS per process."""

    def __init__(self) -> None:
        self.last = float("-inf")
        self.lock = threading.Lock()

    def __call__(self) -> None:
        if not settings.EMBEDDED:
            return
        now = time.monotonic()
        if now - self.last < settings.BOARDS_CLOSE_EVERY_SECONDS or not self.lock.acquire(
            blocking=False
        ):
            return
        try:
            self.last = now
            periods_close_due()
        except Exception:
            logger.exception("closing ended periods failed; the next read retries")
        finally:
            self.lock.release()


close_due_when_embedded = _EmbeddedCloser()
