"""The score ledger: the one place a score changes."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Sum
from django.utils import timezone

from accounts.models import User
from core.errors import ConflictError, NotFoundError
from scoreboard.models import ScoreEntry

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LockedUser:
    """A user's row as the caller read it under its lock, in the current transaction."""

    score: int
    username: str
    ranked: bool  # active and not banned
    # Set by `ledger_lock`: the points its statement already added to the total, and the
    # time it gave as the total's `score_reached_at` (the ledger entry's time too).
    added: int = 0
    at: datetime | None = None


@dataclass(frozen=True)
class LockedRow:
    """What `ledger_lock` read: the row as it was, and whether the user may score."""

    user: LockedUser
    is_active: bool
    is_banned: bool


def ledger_lock(*, user_id: uuid.UUID, add: int) -> LockedRow:
    """Lock a user's row and add `add` to their total, in one statement of the caller's
    transaction (one round trip where a locking read and an update take two).

    The caller checks what it read and either records the award with
    `ledger_award(locked=row.user, delta=add, ...)` in the same transaction, or raises,
    and the rollback undoes the addition. The lock is FOR NO KEY UPDATE (an UPDATE of
    columns no foreign key points at), as `ledger_award`'s own.
    """
    at = timezone.now()
    meta = User._meta
    table, pk = meta.db_table, meta.pk
    score, reached, active, banned, username = (
        meta.get_field(name).column  # type: ignore[union-attr]  # concrete fields
        for name in ("score", "score_reached_at", "is_active", "is_banned", "username")
    )
    with connection.cursor() as cursor:
        # Values as the fields store them (a UUID and a datetime are not every driver's
        # types: SQLite, the embedded default, takes neither as such).
        cursor.execute(
            f"UPDATE {table} SET {score} = {score} + %s, {reached} = %s WHERE {pk.column} = %s "  # noqa: S608 - names from the model
            f"RETURNING {score} - %s, {username}, {active}, {banned}",
            [
                add,
                meta.get_field("score_reached_at").get_db_prep_value(at, connection),
                pk.get_db_prep_value(user_id, connection),
                add,
            ],
        )
        row = cursor.fetchone()
    if row is None:
        raise NotFoundError("User not found.")
    before, name, is_active, is_banned = row
    is_active, is_banned = bool(is_active), bool(is_banned)
    user = LockedUser(
        score=int(before), username=name, ranked=is_active and not is_banned, added=add, at=at
    )
    return LockedRow(user=user, is_active=is_active, is_banned=is_banned)


@dataclass(frozen=True)
class LedgerChange:
    """A committed ledger entry, as the ledger's subscribers hear it after commit."""

    user_id: uuid.UUID
    score: int
    previous_score: int
    reached_at: datetime
    entry_id: int
    # Read under the writer's row lock, when it held one (saves the subscriber a query).
    username: str | None = None
    ranked: bool | None = None  # active and not banned
    # What the ledger's extensions wrote with the entry, in its transaction, by name.
    extras: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class LedgerWrite:
    """What `ledger_award` hands back: the entry and, once the transaction committed and
    a subscriber ranked it, the user's new rank (None when the user is not ranked)."""

    entry: ScoreEntry
    rank: int | None = None
    ranked: bool = False  # a subscriber answered `rank`
    # What the ledger's extensions wrote with the entry (see `ledger_extend`).
    extras: dict[str, Any] = field(default_factory=dict)
    # What subscribers answered after commit, by name (the boards' ranks, for example).
    answers: dict[str, Any] = field(default_factory=dict)

    @property
    def score(self) -> int:
        return self.entry.score_after

    def rank_heard(self, rank: int | None) -> None:
        self.rank, self.ranked = rank, True

    def answer_heard(self, name: str, value: Any) -> None:
        self.answers[name] = value


# A subscriber is called after commit with the change and the write it answers to (its
# `rank_heard` and `answer_heard`).
LedgerSubscriber = Callable[[LedgerChange, LedgerWrite], None]
_subscribers: list[LedgerSubscriber] = []

# An extension is called in the writer's transaction, right after an entry is written,
# with the entry and the user's row as the writer read it under its lock (None when it
# did not read it). What it returns is kept under its name in `LedgerWrite.extras` and
# `LedgerChange.extras`. An exception it raises aborts the writer's transaction: the
# entry and whatever the extension wrote are stored together or not at all.
LedgerExtension = Callable[[ScoreEntry, "LockedUser | None"], Any]
_extensions: dict[str, LedgerExtension] = {}


def ledger_subscribe(subscriber: LedgerSubscriber) -> None:
    """Call `subscriber` after every committed ledger entry (registered in `ready()`)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def ledger_extend(name: str, extension: LedgerExtension) -> None:
    """Call `extension` in the transaction of every ledger entry (registered in
    `ready()`): how a layer above records what an entry means to it (the boards' credits)
    atomically with the entry, while the ledger knows nothing of it."""
    _extensions[name] = extension


def _publish(write: LedgerWrite, locked: LockedUser | None) -> None:
    """After commit, tell every subscriber; the first rank any of them hears is kept."""
    entry = write.entry
    change = LedgerChange(
        user_id=entry.user_id,
        score=entry.score_after,
        previous_score=entry.score_before,
        reached_at=entry.created_at,
        entry_id=entry.pk,
        username=locked.username if locked else None,
        ranked=locked.ranked if locked else None,
        extras=write.extras,
    )

    def publish() -> None:
        for subscriber in _subscribers:
            subscriber(change, write)

    transaction.on_commit(publish, robust=True)


def ledger_award(
    *,
    user_id: uuid.UUID,
    delta: int,
    reason: str = ScoreEntry.Reason.COMPLETION,
    action_id: str = "",
    token_hash: str = "",
    ip: str | None = None,
    user_agent: str = "",
    reverses: ScoreEntry | None = None,
    note: str = "",
    locked: LockedUser | None = None,
    at: datetime | None = None,
) -> LedgerWrite:
    """Add `delta` to a user's score and record the entry, in the caller's transaction.

    Locks the user's row until the transaction ends, so `score_before`/`score_after` are
    exact under concurrent awards. A caller that already holds that lock in this
    transaction passes what it read under it as `locked`. Its subscribers hear of it
    only after commit. `at` is the entry's instant when the caller decides it (a backfill,
    a test of a period boundary); otherwise the lock's time or now.
    """
    now = (locked.at if locked else None) or at or timezone.now()
    if locked and locked.added and locked.added != delta:
        raise ValueError("ledger_lock added other points than this award's")
    # No savepoint inside a caller's transaction: a failure here aborts it all anyway.
    with transaction.atomic(savepoint=False):
        # The row lock makes read-then-update exact; the F() update keeps it atomic anyway.
        before = locked.score if locked else None
        if before is None:
            before = (
                User.objects.select_for_update(no_key=True)
                .filter(pk=user_id)
                .values_list("score", flat=True)
                .first()
            )
        if before is None:
            raise NotFoundError("User not found.")
        if not (locked and locked.added):  # ledger_lock added it already
            User.objects.filter(pk=user_id).update(score=F("score") + delta, score_reached_at=now)
        entry = ScoreEntry.objects.create(
            user_id=user_id,
            delta=delta,
            score_before=before,
            score_after=before + delta,
            reason=reason,
            action_id=action_id,
            token_hash=token_hash,
            ip=ip,
            user_agent=user_agent[:512],
            reverses=reverses,
            note=note[:255],
            created_at=now,
        )
        write = LedgerWrite(entry=entry)
        for name, extension in _extensions.items():
            write.extras[name] = extension(entry, locked)
        _publish(write, locked)
    return write


class AlreadyReversedError(ConflictError):
    code = "already_reversed"
    message = "This score entry has already been reversed."


def ledger_reverse(*, entry: ScoreEntry, note: str = "") -> LedgerWrite:
    """Append the compensating entry for `entry`; a second reversal of it is refused."""
    if entry.reason == ScoreEntry.Reason.REVERSAL:
        raise ConflictError("A reversal cannot itself be reversed.")
    if ScoreEntry.objects.filter(reverses=entry).exists():
        raise AlreadyReversedError()
    try:
        with transaction.atomic():
            return ledger_award(
                user_id=entry.user_id,
                delta=-entry.delta,
                reason=ScoreEntry.Reason.REVERSAL,
                action_id=entry.action_id,
                reverses=entry,
                note=note,
            )
    except IntegrityError as exc:  # a concurrent reversal won the unique `reverses` key
        raise AlreadyReversedError() from exc


@transaction.atomic
def ledger_total_reset(*, user_id: uuid.UUID) -> int:
    """Set a user's stored total to the sum of their ledger entries (the ledger is the
    truth; the total is its cache) and return it. Locks the user's row meanwhile, so no
    award lands between the sum and the write."""
    if not User.objects.select_for_update(no_key=True).filter(pk=user_id).exists():
        raise NotFoundError("User not found.")
    total = ScoreEntry.objects.filter(user_id=user_id).aggregate(total=Sum("delta"))["total"] or 0
    User.objects.filter(pk=user_id).update(score=total)
    return int(total)
