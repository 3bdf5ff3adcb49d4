"""Leaderboard period boundaries: which period holds an instant, and where periods begin
and end.

A board ranks over all time, a calendar period (a day, a week or a month) or a season with
explicit instants. A calendar period is laid on the board's local calendar: it begins at
`day_starts_at` local time on its first local date, in the board's IANA time zone, and a
week begins on `week_starts_on` (ISO weekday, 1 = Monday). Boundaries are instants, kept as
aware UTC datetimes, so a local day may last 23 or 25 hours (23.5 or 24.5 where the clocks
move by half an hour). A period is the half-open interval [starts_at, ends_at).

A local start time that does not exist (the clocks jump over it) starts at the instant the
clocks jump, the first instant after the gap; one that occurs twice (the clocks fall back)
starts at its first occurrence. Both rules keep consecutive periods contiguous: each one
ends exactly where the next begins, whatever the zone does.

A period's key names it in storage and URLs: the local date of its first day for a day or
a week (`2026-03-29`), `2026-03` for a month, `all` for all time and the board's slug for a
season. The key, not the stored instants, is the period's identity: the instants are
recomputed from it, so a time-zone database update moves a boundary but never renames a
period.

This module is pure (standard library only): no database, no settings, no clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

ALL_TIME = "all_time"
DAY = "day"
WEEK = "week"
MONTH = "month"
SEASON = "season"
KINDS = (ALL_TIME, DAY, WEEK, MONTH, SEASON)
CALENDAR_KINDS = (DAY, WEEK, MONTH)

ALL_TIME_KEY = "all"
MAX_SPANS_ENDED = 100_000

_DATE_KEY = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_MONTH_KEY = re.compile(r"([0-9]{4})-([0-9]{2})")
_ONE_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True)
class PeriodRule:
    """How a board cuts time into periods (see the module docstring)."""

    kind: str
    timezone: str = "UTC"
    week_starts_on: int = 1
    day_starts_at: time = time(0, 0)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    season_key: str = ""


@dataclass(frozen=True)
class Span:
    """One period: [starts_at, ends_at) in UTC; both None for all time (it has no edges)."""

    key: str
    starts_at: datetime | None
    ends_at: datetime | None


class PeriodKeyError(ValueError):
    """A key that names no period of the rule: malformed, or of another kind or season."""


def validate_rule(rule: PeriodRule) -> None:
    """Raise ValueError, with the reason, unless every function here can use the rule."""
    if rule.kind not in KINDS:
        raise ValueError(f"Unknown period kind {rule.kind!r}: expected one of {', '.join(KINDS)}.")
    _zone(rule.timezone)
    if type(rule.week_starts_on) is not int or not 1 <= rule.week_starts_on <= 7:
        raise ValueError(
            f"week_starts_on must be an ISO weekday from 1 (Monday) to 7 (Sunday), "
            f"got {rule.week_starts_on!r}."
        )
    at = rule.day_starts_at
    if not isinstance(at, time) or at.tzinfo is not None:
        raise ValueError(f"day_starts_at must be a naive local time (HH:MM), got {at!r}.")
    if at.second or at.microsecond:
        raise ValueError(f"day_starts_at is a local time in whole minutes (HH:MM), got {at}.")
    if rule.kind != SEASON:
        if rule.starts_at is not None or rule.ends_at is not None:
            raise ValueError(f"starts_at and ends_at belong to a season, not to a {rule.kind}.")
        return
    if rule.starts_at is None or rule.ends_at is None:
        raise ValueError("A season needs both starts_at and ends_at.")
    for name, value in (("starts_at", rule.starts_at), ("ends_at", rule.ends_at)):
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValueError(f"A season's {name} must be an aware datetime, got {value!r}.")
    if rule.ends_at <= rule.starts_at:
        raise ValueError(
            f"A season must end after it starts: {rule.ends_at.isoformat()} is not after "
            f"{rule.starts_at.isoformat()}."
        )
    if not rule.season_key:
        raise ValueError("A season needs its key (the board's slug).")


def local_start(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant when local `day` reaches wall time `at` in `tz`.

    A wall time that occurs twice gives its first occurrence (fold=0, zoneinfo's default).
    One that the clocks jump over gives the instant of the jump: zoneinfo would map it with
    the offset from before the jump, landing after the jump by the wall time's depth into
    the gap, so a day starting at 02:30 would begin at a different instant from one starting
    at 02:00 although both are skipped.
    """
    if at.tzinfo is not None:
        raise ValueError(f"The local time must be naive, got {at!r}.")
    wall = datetime.combine(day, at)
    instant = wall.replace(tzinfo=tz).astimezone(UTC)
    if _wall(instant, tz) == wall:
        return instant
    # In a gap the pre-jump offset (fold=0) lands after the jump, the post-jump offset
    # (fold=1) before it, and the standard library names no transition: search between.
    before, after = wall.replace(tzinfo=tz, fold=1).astimezone(UTC), instant
    if after < before:
        before, after = after, before
    while after - before > _MICROSECOND:
        middle = before + (after - before) // 2
        if _wall(middle, tz) > wall:
            after = middle
        else:
            before = middle
    return after


def span_at(rule: PeriodRule, instant: datetime) -> Span | None:
    """The period holding `instant` (aware, any zone); None outside a season's interval."""
    validate_rule(rule)
    return _span_holding(rule, _aware(instant, "instant"))


def span_after(rule: PeriodRule, span: Span) -> Span | None:
    """The period that follows `span` (None for all time and a season: they have no next)."""
    current = span_of_key(rule, span.key)
    if current.ends_at is None or rule.kind == SEASON:
        return None
    return _span_holding(rule, current.ends_at)


def span_before(rule: PeriodRule, span: Span) -> Span | None:
    """The period that precedes `span` (None for all time and a season)."""
    current = span_of_key(rule, span.key)
    if current.starts_at is None or rule.kind == SEASON:
        return None
    return _span_holding(rule, current.starts_at - _MICROSECOND)


def span_of_key(rule: PeriodRule, key: str) -> Span:
    """The period named `key`; PeriodKeyError unless the key is one that span_at can give.

    Keys are strict (`2026-03-01`, never `2026-3-1`) so that one period has one key.
    """
    validate_rule(rule)
    if rule.kind == ALL_TIME:
        if key != ALL_TIME_KEY:
            raise PeriodKeyError(f"The all-time period's key is {ALL_TIME_KEY!r}, not {key!r}.")
        return Span(ALL_TIME_KEY, None, None)
    if rule.kind == SEASON:
        if key != rule.season_key:
            raise PeriodKeyError(f"This season's key is {rule.season_key!r}, not {key!r}.")
        return Span(rule.season_key, *_season_bounds(rule))
    try:
        first, last = _first_days(rule, key)
        tz = _zone(rule.timezone)
        span = Span(
            key,
            local_start(first, rule.day_starts_at, tz),
            local_start(last, rule.day_starts_at, tz),
        )
    except OverflowError as error:
        raise PeriodKeyError(f"The period {key!r} lies outside the supported dates.") from error
    if span.starts_at == span.ends_at:
        raise PeriodKeyError(f"The period {key!r} holds no instant: its zone skipped it.")
    return span


def spans_ended(rule: PeriodRule, since: datetime, until: datetime) -> list[Span]:
    """Every period whose end falls in (since, until], oldest first.

    A caller that closes periods runs it from its last run's `until`: each period ends in
    exactly one such window, so none is missed or closed twice. Bounded: a window holding
    more than MAX_SPANS_ENDED periods raises ValueError rather than loop for long.
    """
    validate_rule(rule)
    since, until = _aware(since, "since"), _aware(until, "until")
    if rule.kind == ALL_TIME or until <= since:
        return []
    if rule.kind == SEASON:
        starts_at, ends_at = _season_bounds(rule)
        return [Span(rule.season_key, starts_at, ends_at)] if since < ends_at <= until else []
    ended: list[Span] = []
    span = _span_holding(rule, since)
    while span is not None and span.ends_at is not None and span.ends_at <= until:
        if len(ended) == MAX_SPANS_ENDED:
            raise ValueError(
                f"More than {MAX_SPANS_ENDED} periods end between {since.isoformat()} and "
                f"{until.isoformat()}."
            )
        ended.append(span)
        span = _span_holding(rule, span.ends_at)
    return ended


def _span_holding(rule: PeriodRule, instant: datetime) -> Span | None:
    """span_at for a valid rule and an aware instant."""
    if rule.kind == ALL_TIME:
        return Span(ALL_TIME_KEY, None, None)
    if rule.kind == SEASON:
        starts_at, ends_at = _season_bounds(rule)
        return Span(rule.season_key, starts_at, ends_at) if starts_at <= instant < ends_at else None
    tz, at = _zone(rule.timezone), rule.day_starts_at
    day = _local_day(instant, at, tz)
    if rule.kind == DAY:
        first, last = day, day + _ONE_DAY
        key = first.isoformat()
    elif rule.kind == WEEK:
        first = day - timedelta(days=(day.isoweekday() - rule.week_starts_on) % 7)
        last = first + timedelta(days=7)
        key = first.isoformat()
    else:
        first, last = day.replace(day=1), _next_month(day)
        key = f"{first.year:04d}-{first.month:02d}"
    return Span(key, local_start(first, at, tz), local_start(last, at, tz))


def _local_day(instant: datetime, at: time, tz: ZoneInfo) -> date:
    """The local date whose day (from `at` to `at` the next date) holds `instant`.

    The wall clock less `at` gives the date except near a fold or a gap: during the second
    pass of a repeated hour the wall clock reads earlier than the day start it has already
    passed (02:10 the second time is after a day that began at the first 02:30), and a
    skipped day has a start but no instant. So the guess is checked against local_start
    and moved a day at a time; day starts never decrease, so the moves end, after one or
    two in any real zone.
    """
    wall = _wall(instant, tz)
    day = (wall - timedelta(hours=at.hour, minutes=at.minute)).date()
    while local_start(day, at, tz) > instant:
        day -= _ONE_DAY
    while local_start(day + _ONE_DAY, at, tz) <= instant:
        day += _ONE_DAY
    return day


def _first_days(rule: PeriodRule, key: str) -> tuple[date, date]:
    """The first local date of the period named `key` and that of the next period."""
    if rule.kind == MONTH:
        match = _MONTH_KEY.fullmatch(key)
        if match is None or not 1 <= int(match[2]) <= 12 or int(match[1]) == 0:
            raise PeriodKeyError(f"A month's key is YYYY-MM (like 2026-03), got {key!r}.")
        first = date(int(match[1]), int(match[2]), 1)
        return first, _next_month(first)
    match = _DATE_KEY.fullmatch(key)
    try:
        if match is None:
            raise ValueError(key)
        first = date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError as error:
        raise PeriodKeyError(f"A {rule.kind}'s key is a date YYYY-MM-DD, got {key!r}.") from error
    if rule.kind == DAY:
        return first, first + _ONE_DAY
    if first.isoweekday() != rule.week_starts_on:
        raise PeriodKeyError(
            f"A week of this board starts on ISO weekday {rule.week_starts_on}; {key} is a "
            f"weekday {first.isoweekday()}."
        )
    return first, first + timedelta(days=7)


def _next_month(day: date) -> date:
    if day.month == 12:
        if day.year == date.max.year:
            raise OverflowError("The month after December 9999 is out of range.")
        return date(day.year + 1, 1, 1)
    return date(day.year, day.month + 1, 1)


def _season_bounds(rule: PeriodRule) -> tuple[datetime, datetime]:
    """A validated season's instants in UTC."""
    if rule.starts_at is None or rule.ends_at is None:
        raise ValueError("A season needs both starts_at and ends_at.")
    return rule.starts_at.astimezone(UTC), rule.ends_at.astimezone(UTC)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError) as error:
        raise ValueError(f"Unknown time zone {name!r}: expected an IANA name.") from error


def _aware(instant: datetime, name: str) -> datetime:
    if not isinstance(instant, datetime) or instant.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {instant!r}.")
    return instant.astimezone(UTC)


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    """The local wall-clock time of `instant` in `tz`, naive."""
    return instant.astimezone(tz).replace(tzinfo=None)
