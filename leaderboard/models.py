"""Boards and their periods (docs/boards.md has the semantics).

The ledger (scoreboard) is the truth of every score. A board counts some action types in
periods; a completion's entry is *credited* to the open period of every active board that
counts its action (`PeriodCredit`, in the completion's transaction), and `PeriodScore` is
each user's running total in a period, as `User.score` is for all time. Closing a period
writes its final standings from the credits, with a checksum, as revision 1; a reversal or
a ban that touches a closed period writes the next revision.

The board `global` (all time, every action type) is the board of `/api/v1/leaderboard/`:
its totals are the users' own (`User.score`), so it has no credits of its own.
"""

from __future__ import annotations

from datetime import time

from django.conf import settings
from django.db import models
from django.utils.timezone import now

from leaderboard.periods import PeriodRule

GLOBAL = "global"


class Board(models.Model):
    class Period(models.TextChoices):
        ALL_TIME = "all_time", "All time"
        DAY = "day", "Day"
        WEEK = "week", "Week"
        MONTH = "month", "Month"
        SEASON = "season", "Season"

    slug = models.SlugField(max_length=40, unique=True)
    title = models.CharField(max_length=120)
    period = models.CharField(max_length=12, choices=Period.choices, default=Period.ALL_TIME)
    timezone = models.CharField(max_length=64, default="UTC")
    week_starts_on = models.PositiveSmallIntegerField(default=1)  # ISO weekday
    day_starts_at = models.TimeField(default=time(0, 0))
    starts_at = models.DateTimeField(null=True, blank=True)  # season only
    ends_at = models.DateTimeField(null=True, blank=True)  # season only
    # Action type ids counted; empty: every action type.
    action_types = models.JSONField(default=list, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=now)
    # Set when staff ended a season before its end (`ends_at` is then that instant).
    ended_early_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(week_starts_on__gte=1, week_starts_on__lte=7),
                name="board_week_starts_on_iso",
            ),
            models.CheckConstraint(
                condition=~models.Q(period="season")
                | models.Q(starts_at__isnull=False, ends_at__gt=models.F("starts_at")),
                name="board_season_has_span",
            ),
        ]

    def __str__(self) -> str:
        return self.slug

    @property
    def rule(self) -> PeriodRule:
        return PeriodRule(
            kind=self.period,
            timezone=self.timezone,
            week_starts_on=self.week_starts_on,
            day_starts_at=self.day_starts_at,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            season_key=self.slug,
        )

    def counts(self, action_id: str) -> bool:
        return not self.action_types or action_id in self.action_types


class Period(models.Model):
    """One period of a board: [starts_at, ends_at) (ends_at None: all time)."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        CLOSING = "closing", "Closing"  # no credit can join it any more; standings pending
        CLOSED = "closed", "Closed"

    board = models.ForeignKey(Board, on_delete=models.PROTECT, related_name="periods")
    key = models.CharField(max_length=40)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    state = models.CharField(max_length=8, choices=State.choices, default=State.OPEN)
    revision = models.PositiveIntegerField(default=0)  # 0 until closed
    participants = models.PositiveIntegerField(default=0)
    checksum = models.CharField(max_length=64, blank=True, default="")
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["board", "key"], name="period_board_key"),
        ]
        indexes = [
            models.Index(fields=["board", "-starts_at"], name="period_board_recent"),
            models.Index(fields=["state", "ends_at"], name="period_state_end"),
        ]

    def __str__(self) -> str:
        return f"{self.board_id}:{self.key}"


class PeriodCredit(models.Model):
    """One ledger entry counted in one period (append-only, like the ledger): a
    completion's points, or a reversal's take-back in the reversed completion's period."""

    # No index of their own: the composite ones below cover the reads, and each index
    # is a write on the completion's path. (User: a ban's lookup goes by PeriodScore.)
    period = models.ForeignKey(
        Period, on_delete=models.PROTECT, related_name="credits", db_index=False
    )
    entry = models.ForeignKey(
        "scoreboard.ScoreEntry",
        on_delete=models.PROTECT,
        related_name="period_credits",
        db_index=False,
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    delta = models.BigIntegerField()
    at = models.DateTimeField()  # the entry's time

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["entry", "period"], name="credit_entry_period"),
        ]
        indexes = [models.Index(fields=["period", "user"], name="credit_period_user")]

    def __str__(self) -> str:
        return f"{self.period_id}: entry {self.entry_id} {self.delta:+d}"


class PeriodScore(models.Model):
    """A user's running total in a period: the sum of their credits there (the index of
    an open period is built from these rows)."""

    period = models.ForeignKey(
        Period, on_delete=models.PROTECT, related_name="scores", db_index=False
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    score = models.BigIntegerField(default=0)
    reached_at = models.DateTimeField()
    entry_id = models.BigIntegerField(default=0)  # the last credited ledger entry

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["period", "user"], name="period_score_user"),
        ]
        indexes = [
            models.Index(
                fields=["period", "-score", "reached_at", "user"], name="period_score_rank"
            ),
            models.Index(fields=["period", "entry_id"], name="period_score_entry"),
        ]

    def __str__(self) -> str:
        return f"{self.period_id}: {self.user_id} {self.score}"


class PeriodRevision(models.Model):
    """One computation of a closed period's standings: revision 1 at the close, and one
    more for every reversal or ban that changed them afterwards."""

    period = models.ForeignKey(Period, on_delete=models.PROTECT, related_name="revisions")
    revision = models.PositiveIntegerField()
    participants = models.PositiveIntegerField()
    checksum = models.CharField(max_length=64)
    cause = models.CharField(max_length=255)
    created_at = models.DateTimeField(default=now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["period", "revision"], name="revision_period_number"),
        ]

    def __str__(self) -> str:
        return f"{self.period_id} r{self.revision}: {self.cause}"


class Standing(models.Model):
    """One row of a period's standings in one revision."""

    # No foreign key constraints: standings are derived from the credits, which hold
    # them, and checking a million of them at the close's commit took 15-22 s.
    period = models.ForeignKey(
        Period,
        on_delete=models.DO_NOTHING,
        related_name="standings",
        db_index=False,
        db_constraint=False,
    )
    revision = models.PositiveIntegerField()
    rank = models.PositiveIntegerField()
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
    )
    username = models.CharField(max_length=150)
    score = models.BigIntegerField()
    reached_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["period", "revision", "rank"], name="standing_period_rank"
            ),
        ]
        indexes = [
            models.Index(fields=["period", "revision", "user"], name="standing_period_user"),
        ]

    def __str__(self) -> str:
        return f"{self.period_id} r{self.revision} #{self.rank}: {self.username}"
