"""Crediting a ledger entry to the periods of the boards that count it, in the entry's
own transaction (the ledger's extension `boards`, registered in `ready()`).

A completion counts in the period that holds the instant the server accepted it (the
entry's time), on every active board that counts its action type; a reversal counts in
the periods of the completion it reverses, closed ones included. One statement on
PostgreSQL writes every board's credit and running total, so the boards of one entry
move together or not at all.

The close cannot miss a credit still in flight: the statement takes a share lock on each
open period it credits and credits only periods still `open`; the closer takes the
period's row lock exclusively to mark it `closing`, which waits for every transaction
holding the share lock. A completion accepted before the end whose statement comes after
that (a writer stalled past the closer's grace) finds its period closing, and the whole
transaction is refused with 503 and rolled back: the client's retry counts in the period
of its new instant, and nothing is half written.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection

from accounts.models import User
from core.errors import ServiceUnavailableError
from leaderboard.boards import active_boards
from leaderboard.models import Period, PeriodCredit, PeriodScore
from leaderboard.periods import span_at
from scoreboard.models import ScoreEntry
from scoreboard.services import LockedUser


@dataclass(frozen=True)
class Credit:
    """One period credited with an entry, and the user's total there after it."""

    board: str
    period_id: int
    period_key: str
    ends_at: datetime | None
    score: int
    reached_at: datetime
    closed: bool  # credited to a period already closing or closed (a reversal)


class PeriodClosingError(ServiceUnavailableError):
    code = "period_closing"
    message = "The period this completion counts in is being closed; retry it."

    def __init__(self) -> None:
        super().__init__(headers={"Retry-After": "1"})


def credit_entry(entry: ScoreEntry, locked: LockedUser | None) -> list[Credit]:
    """The ledger's extension: credit `entry` to its periods (see the module's docstring)."""
    if entry.reason == ScoreEntry.Reason.COMPLETION and entry.action_id:
        targets: list[tuple[str, int, str, datetime | None]] = []
        for board in active_boards.counting(entry.action_id):
            span = span_at(board.rule, entry.created_at)
            if span is not None:
                pid = active_boards.period_id(board, span)
                targets.append((board.slug, pid, span.key, span.ends_at))
        if not targets:
            return []
        written = _credit(entry, [t[1] for t in targets], only_open=True)
        if len(written) != len(targets):
            raise PeriodClosingError()
        return [
            Credit(slug, pid, key, ends, written[pid], entry.created_at, closed=False)
            for slug, pid, key, ends in targets
        ]
    if entry.reason == ScoreEntry.Reason.REVERSAL and entry.reverses_id:
        periods = list(
            Period.objects.filter(credits__entry_id=entry.reverses_id).select_related("board")
        )
        if not periods:
            return []
        written = _credit(entry, [p.pk for p in periods], only_open=False)
        return [
            Credit(
                p.board.slug,
                p.pk,
                p.key,
                p.ends_at,
                written[p.pk],
                entry.created_at,
                closed=p.state != Period.State.OPEN,
            )
            for p in periods
        ]
    return []


def _credit(entry: ScoreEntry, period_ids: list[int], *, only_open: bool) -> dict[int, int]:
    """Write the credits and running totals of `entry` in `period_ids`; {period id: the
    user's total there after it}, for the periods credited (with `only_open`, the open
    ones: the rest are being closed)."""
    credit, score, period = PeriodCredit._meta, PeriodScore._meta, Period._meta
    user_pk = User._meta.pk
    if user_pk is None:  # pragma: no cover - a concrete model has one
        raise TypeError("User has no primary key")
    at = PeriodCredit._meta.get_field("at").get_db_prep_value(entry.created_at, connection)
    user_id = user_pk.get_db_prep_value(entry.user_id, connection)
    ids = ",".join(str(int(pid)) for pid in period_ids)  # ints from our own rows
    state = f"AND state = '{Period.State.OPEN}'" if only_open else ""
    upsert = (
        f"ON CONFLICT (period_id, user_id) DO UPDATE SET "
        f"score = {score.db_table}.score + excluded.score, "
        f"reached_at = {{greatest}}({score.db_table}.reached_at, excluded.reached_at), "
        f"entry_id = {{greatest}}({score.db_table}.entry_id, excluded.entry_id) "
        f"RETURNING period_id, score"
    )
    values = [entry.pk, user_id, entry.delta, at]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            lock = "FOR SHARE" if only_open else ""
            cursor.execute(
                f"WITH p AS (SELECT id FROM {period.db_table} WHERE id IN ({ids}) {state} {lock}), "  # noqa: S608 - names from the models
                f"c AS (INSERT INTO {credit.db_table} (period_id, entry_id, user_id, delta, at) "
                f"SELECT id, %s, %s, %s, %s FROM p RETURNING period_id) "
                f"INSERT INTO {score.db_table} (period_id, user_id, score, reached_at, entry_id) "
                f"SELECT period_id, %s, %s, %s, %s FROM c " + upsert.format(greatest="GREATEST"),
                [*values, user_id, entry.delta, at, entry.pk],
            )
            return {int(pid): int(total) for pid, total in cursor.fetchall()}
        # SQLite (the embedded default): one writer at a time, so two statements are exact.
        cursor.execute(f"SELECT id FROM {period.db_table} WHERE id IN ({ids}) {state}")  # noqa: S608
        open_ids = [int(row[0]) for row in cursor.fetchall()]
        if not open_ids:
            return {}
        found = ",".join(str(pid) for pid in open_ids)
        cursor.execute(
            f"INSERT INTO {credit.db_table} (period_id, entry_id, user_id, delta, at) "  # noqa: S608
            f"SELECT id, %s, %s, %s, %s FROM {period.db_table} WHERE id IN ({found})",
            values,
        )
        cursor.execute(
            f"INSERT INTO {score.db_table} (period_id, user_id, score, reached_at, entry_id) "  # noqa: S608
            f"SELECT id, %s, %s, %s, %s FROM {period.db_table} WHERE id IN ({found}) "
            + upsert.format(greatest="MAX"),
            [user_id, entry.delta, at, entry.pk],
        )
        return {int(pid): int(total) for pid, total in cursor.fetchall()}
