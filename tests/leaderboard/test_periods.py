"""Leaderboard period boundaries: every expected instant is written out by hand."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leaderboard.periods import (
    MAX_SPANS_ENDED,
    PeriodKeyError,
    PeriodRule,
    Span,
    local_start,
    span_after,
    span_at,
    span_before,
    span_of_key,
    spans_ended,
    validate_rule,
)

PARIS = "Europe/Paris"
NEW_YORK = "America/New_York"
LORD_HOWE = "Australia/Lord_Howe"
US = timedelta(microseconds=1)


def utc(text: str) -> datetime:
    """An instant written as 2026-03-28T23:00 (UTC)."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def day_rule(tz: str = "UTC", at: time = time(0, 0)) -> PeriodRule:
    return PeriodRule(kind="day", timezone=tz, day_starts_at=at)


def held(rule: PeriodRule, instant: datetime) -> Span:
    span = span_at(rule, instant)
    assert span is not None
    return span


# -- local_start ---------------------------------------------------------------------------


def test_it_maps_an_ordinary_local_time():
    assert local_start(date(2026, 7, 1), time(9, 30), ZoneInfo(PARIS)) == utc("2026-07-01T07:30")


def test_it_starts_a_skipped_local_time_when_the_clocks_jump():
    paris = ZoneInfo(PARIS)
    assert local_start(date(2026, 3, 29), time(2, 30), paris) == utc("2026-03-29T01:00")
    assert local_start(date(2026, 3, 29), time(2, 0), paris) == utc("2026-03-29T01:00")
    assert local_start(date(2026, 3, 29), time(3, 0), paris) == utc("2026-03-29T01:00")
    new_york = ZoneInfo(NEW_YORK)
    assert local_start(date(2026, 3, 8), time(2, 15), new_york) == utc("2026-03-08T07:00")


def test_it_starts_a_repeated_local_time_at_its_first_occurrence():
    paris = ZoneInfo(PARIS)
    assert local_start(date(2026, 10, 25), time(2, 30), paris) == utc("2026-10-25T00:30")
    new_york = ZoneInfo(NEW_YORK)
    assert local_start(date(2026, 11, 1), time(1, 30), new_york) == utc("2026-11-01T05:30")


def test_it_returns_utc():
    start = local_start(date(2026, 1, 1), time(0, 0), ZoneInfo(NEW_YORK))
    assert start.tzinfo is UTC


# -- days ----------------------------------------------------------------------------------


def test_it_cuts_the_23_hour_day_of_the_spring_change_in_paris():
    rule = day_rule(PARIS)
    span = held(rule, utc("2026-03-29T12:00"))
    assert span == Span("2026-03-29", utc("2026-03-28T23:00"), utc("2026-03-29T22:00"))
    assert held(rule, utc("2026-03-28T23:00") - US).key == "2026-03-28"
    assert held(rule, utc("2026-03-28T23:00")).key == "2026-03-29"
    assert held(rule, utc("2026-03-29T22:00") - US).key == "2026-03-29"
    assert held(rule, utc("2026-03-29T22:00")).key == "2026-03-30"


def test_it_cuts_the_25_hour_day_of_the_autumn_change_in_paris():
    rule = day_rule(PARIS)
    span = held(rule, utc("2026-10-25T12:00"))
    assert span == Span("2026-10-25", utc("2026-10-24T22:00"), utc("2026-10-25T23:00"))
    assert held(rule, utc("2026-10-24T22:00") - US).key == "2026-10-24"
    assert held(rule, utc("2026-10-24T22:00")).key == "2026-10-25"
    assert held(rule, utc("2026-10-25T23:00") - US).key == "2026-10-25"
    assert held(rule, utc("2026-10-25T23:00")).key == "2026-10-26"
    # Both occurrences of 02:30 local belong to the one day.
    assert held(rule, utc("2026-10-25T00:30")).key == "2026-10-25"
    assert held(rule, utc("2026-10-25T01:30")).key == "2026-10-25"


def test_it_cuts_the_days_of_both_changes_in_new_york():
    rule = day_rule(NEW_YORK)
    assert held(rule, utc("2026-03-08T12:00")) == Span(
        "2026-03-08", utc("2026-03-08T05:00"), utc("2026-03-09T04:00")
    )
    assert held(rule, utc("2026-03-08T05:00") - US).key == "2026-03-07"
    assert held(rule, utc("2026-03-09T04:00") - US).key == "2026-03-08"
    assert held(rule, utc("2026-03-09T04:00")).key == "2026-03-09"
    assert held(rule, utc("2026-11-01T12:00")) == Span(
        "2026-11-01", utc("2026-11-01T04:00"), utc("2026-11-02T05:00")
    )
    assert held(rule, utc("2026-11-01T04:00") - US).key == "2026-10-31"
    assert held(rule, utc("2026-11-02T05:00") - US).key == "2026-11-01"
    assert held(rule, utc("2026-11-02T05:00")).key == "2026-11-02"


def test_it_starts_a_day_that_begins_in_the_spring_gap_when_the_clocks_jump():
    rule = day_rule(PARIS, time(2, 30))
    span = held(rule, utc("2026-03-29T12:00"))
    assert span == Span("2026-03-29", utc("2026-03-29T01:00"), utc("2026-03-30T00:30"))
    assert held(rule, utc("2026-03-29T01:00") - US) == Span(
        "2026-03-28", utc("2026-03-28T01:30"), utc("2026-03-29T01:00")
    )


def test_it_starts_a_day_that_begins_in_the_autumn_fold_at_the_first_occurrence():
    rule = day_rule(PARIS, time(2, 30))
    span = held(rule, utc("2026-10-25T12:00"))
    assert span == Span("2026-10-25", utc("2026-10-25T00:30"), utc("2026-10-26T01:30"))
    assert held(rule, utc("2026-10-25T00:30") - US).key == "2026-10-24"
    # 02:29 local the second time round is still the day that began at the first 02:30.
    assert held(rule, utc("2026-10-25T01:29")).key == "2026-10-25"


def test_it_keys_a_late_starting_day_by_its_first_date():
    # 02:00 local on 2026-03-29 is before a 04:00 day start: still the 28th's day.
    assert held(day_rule(at=time(4, 0)), utc("2026-03-29T02:00")) == Span(
        "2026-03-28", utc("2026-03-28T04:00"), utc("2026-03-29T04:00")
    )
    # In Paris, 01:30 local (CET) on the 29th, before the jump and the 04:00 start.
    assert held(day_rule(PARIS, time(4, 0)), utc("2026-03-29T00:30")) == Span(
        "2026-03-28", utc("2026-03-28T03:00"), utc("2026-03-29T02:00")
    )


def test_it_accepts_an_instant_in_any_zone():
    plus_two = timezone(timedelta(hours=2))
    instant = datetime(2026, 3, 30, 0, 30, tzinfo=plus_two)  # 2026-03-29T22:30Z
    span = held(day_rule(PARIS), instant)
    assert span.key == "2026-03-30"
    assert span.starts_at == utc("2026-03-29T22:00")
    assert span.starts_at is not None
    assert span.starts_at.tzinfo is UTC


def test_it_refuses_a_naive_instant():
    with pytest.raises(ValueError, match="aware"):
        span_at(day_rule(), datetime(2026, 1, 1))  # noqa: DTZ001


# -- weeks ---------------------------------------------------------------------------------


def test_it_cuts_iso_week_53_of_2026_from_monday():
    rule = PeriodRule(kind="week", timezone=PARIS, week_starts_on=1)
    week = Span("2026-12-28", utc("2026-12-27T23:00"), utc("2027-01-03T23:00"))
    assert held(rule, utc("2026-12-27T23:00")) == week
    assert held(rule, utc("2027-01-01T12:00")) == week
    assert held(rule, utc("2027-01-03T23:00") - US) == week
    assert held(rule, utc("2026-12-27T23:00") - US).key == "2026-12-21"
    assert held(rule, utc("2027-01-03T23:00")).key == "2027-01-04"
    assert span_after(rule, week) == Span(
        "2027-01-04", utc("2027-01-03T23:00"), utc("2027-01-10T23:00")
    )


def test_it_cuts_weeks_from_sunday_across_the_new_year():
    rule = PeriodRule(kind="week", timezone=PARIS, week_starts_on=7)
    week = Span("2026-12-27", utc("2026-12-26T23:00"), utc("2027-01-02T23:00"))
    assert held(rule, utc("2026-12-28T08:00")) == week
    assert held(rule, utc("2027-01-02T23:00") - US) == week
    assert held(rule, utc("2027-01-03T12:00")) == Span(
        "2027-01-03", utc("2027-01-02T23:00"), utc("2027-01-09T23:00")
    )


def test_it_cuts_a_week_holding_a_clock_change():
    rule = PeriodRule(kind="week", timezone=PARIS, week_starts_on=1)
    assert held(rule, utc("2026-03-29T12:00")) == Span(
        "2026-03-23", utc("2026-03-22T23:00"), utc("2026-03-29T22:00")
    )


# -- months --------------------------------------------------------------------------------


def test_it_cuts_a_month_holding_a_clock_change():
    rule = PeriodRule(kind="month", timezone=PARIS)
    march = Span("2026-03", utc("2026-02-28T23:00"), utc("2026-03-31T22:00"))
    assert held(rule, utc("2026-03-15T12:00")) == march
    assert held(rule, utc("2026-02-28T23:00")) == march
    assert held(rule, utc("2026-02-28T23:00") - US).key == "2026-02"
    assert held(rule, utc("2026-03-31T22:00") - US) == march
    assert held(rule, utc("2026-03-31T22:00")).key == "2026-04"


def test_it_steps_from_december_to_january():
    rule = PeriodRule(kind="month", timezone=PARIS)
    december = Span("2026-12", utc("2026-11-30T23:00"), utc("2026-12-31T23:00"))
    january = Span("2027-01", utc("2026-12-31T23:00"), utc("2027-01-31T23:00"))
    assert held(rule, utc("2026-12-31T22:59")) == december
    assert held(rule, utc("2026-12-31T23:00")) == january
    assert span_after(rule, december) == january
    assert span_before(rule, january) == december


def test_it_starts_a_month_on_the_first_at_the_day_start():
    rule = PeriodRule(kind="month", day_starts_at=time(6, 0))
    assert held(rule, utc("2026-04-01T05:59")) == Span(
        "2026-03", utc("2026-03-01T06:00"), utc("2026-04-01T06:00")
    )


# -- all time and seasons ------------------------------------------------------------------

SEASON = PeriodRule(
    kind="season",
    starts_at=utc("2026-06-01T00:00"),
    ends_at=datetime(2026, 9, 1, tzinfo=ZoneInfo(PARIS)),
    season_key="summer-cup",
)


def test_it_holds_an_instant_inside_the_season():
    season = Span("summer-cup", utc("2026-06-01T00:00"), utc("2026-08-31T22:00"))
    assert held(SEASON, utc("2026-06-01T00:00")) == season
    assert held(SEASON, utc("2026-08-31T22:00") - US) == season
    assert span_of_key(SEASON, "summer-cup") == season
    assert span_after(SEASON, season) is None
    assert span_before(SEASON, season) is None


def test_it_holds_no_instant_outside_the_season():
    assert span_at(SEASON, utc("2026-06-01T00:00") - US) is None
    assert span_at(SEASON, utc("2026-08-31T22:00")) is None


def test_it_holds_every_instant_in_all_time():
    rule = PeriodRule(kind="all_time")
    span = held(rule, utc("1999-12-31T23:59"))
    assert span == Span("all", None, None)
    assert span_of_key(rule, "all") == span
    assert span_after(rule, span) is None
    assert span_before(rule, span) is None
    assert spans_ended(rule, utc("2000-01-01T00:00"), utc("2100-01-01T00:00")) == []


# -- chains --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tz", "lengths"),
    [
        (PARIS, {23.0, 24.0, 25.0}),
        (NEW_YORK, {23.0, 24.0, 25.0}),
        (LORD_HOWE, {23.5, 24.0, 24.5}),
    ],
)
def test_it_chains_400_days_without_a_gap_or_an_overlap(tz: str, lengths: set[float]):
    rule = day_rule(tz)
    span = held(rule, utc("2026-01-01T12:00"))
    seen: set[float] = set()
    for _ in range(400):
        following = span_after(rule, span)
        assert following is not None
        assert following.starts_at == span.ends_at
        assert span_before(rule, following) == span
        assert date.fromisoformat(following.key) == date.fromisoformat(span.key) + timedelta(1)
        assert span.starts_at is not None
        assert span.ends_at is not None
        seen.add((span.ends_at - span.starts_at) / timedelta(hours=1))
        span = following
    assert seen == lengths


def test_it_chains_weeks_and_months_backwards():
    for rule in (
        PeriodRule(kind="week", timezone=LORD_HOWE, week_starts_on=3, day_starts_at=time(2, 0)),
        PeriodRule(kind="month", timezone=NEW_YORK, day_starts_at=time(1, 30)),
    ):
        span = held(rule, utc("2027-06-01T00:00"))
        for _ in range(60):
            earlier = span_before(rule, span)
            assert earlier is not None
            assert earlier.ends_at == span.starts_at
            span = earlier


def test_it_skips_a_day_that_its_zone_left_out():
    # Samoa went from 2011-12-29 straight to 2011-12-31 (UTC-10 to UTC+14).
    rule = day_rule("Pacific/Apia")
    before = Span("2011-12-29", utc("2011-12-29T10:00"), utc("2011-12-30T10:00"))
    after = Span("2011-12-31", utc("2011-12-30T10:00"), utc("2011-12-31T10:00"))
    assert span_after(rule, before) == after
    assert span_before(rule, after) == before
    with pytest.raises(PeriodKeyError, match="holds no instant"):
        span_of_key(rule, "2011-12-30")


# -- keys ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "key", "expected"),
    [
        (day_rule(PARIS), "2026-03-29", ("2026-03-28T23:00", "2026-03-29T22:00")),
        (
            PeriodRule(kind="week", timezone=NEW_YORK, week_starts_on=7),
            "2026-11-01",
            ("2026-11-01T04:00", "2026-11-08T05:00"),
        ),
        (
            PeriodRule(kind="month", timezone=LORD_HOWE),
            "2026-04",
            ("2026-03-31T13:00", "2026-04-30T13:30"),
        ),
    ],
)
def test_it_reads_a_key_back_into_its_span(rule: PeriodRule, key: str, expected: tuple[str, str]):
    span = span_of_key(rule, key)
    assert span == Span(key, utc(expected[0]), utc(expected[1]))
    assert span.starts_at is not None
    assert held(rule, span.starts_at) == span


@pytest.mark.parametrize(
    ("rule", "key"),
    [
        (day_rule(), "2026-13-01"),
        (day_rule(), "2026-02-30"),
        (day_rule(), "2026-3-1"),
        (day_rule(), "2026-03-01 "),
        (day_rule(), "2026-03"),
        (day_rule(), "0000-01-01"),
        (day_rule(), "\uff12\uff10\uff12\uff16-03-01"),  # full-width digits
        (day_rule(), ""),
        (PeriodRule(kind="week", week_starts_on=1), "2026-12-29"),
        (PeriodRule(kind="week", week_starts_on=7), "2026-12-28"),
        (PeriodRule(kind="month"), "2026-13"),
        (PeriodRule(kind="month"), "2026-00"),
        (PeriodRule(kind="month"), "2026-3"),
        (PeriodRule(kind="month"), "2026-03-01"),
        (PeriodRule(kind="month"), "9999-12"),
        (PeriodRule(kind="all_time"), "2026"),
        (SEASON, "winter-cup"),
        (SEASON, "all"),
    ],
)
def test_it_refuses_a_malformed_key(rule: PeriodRule, key: str):
    with pytest.raises(PeriodKeyError):
        span_of_key(rule, key)


def test_it_recomputes_the_next_span_from_the_key():
    rule = day_rule(PARIS)
    stale = Span("2026-03-29", utc("2026-03-29T00:00"), utc("2026-03-30T00:00"))
    assert span_after(rule, stale) == Span(
        "2026-03-30", utc("2026-03-29T22:00"), utc("2026-03-30T22:00")
    )
    with pytest.raises(PeriodKeyError):
        span_after(rule, Span("2026-03", None, None))


# -- spans_ended ---------------------------------------------------------------------------


def test_it_catches_up_on_five_missed_days_in_order():
    rule = day_rule(PARIS)
    ended = spans_ended(rule, utc("2026-03-26T12:00"), utc("2026-03-31T12:00"))
    assert ended == [
        Span("2026-03-26", utc("2026-03-25T23:00"), utc("2026-03-26T23:00")),
        Span("2026-03-27", utc("2026-03-26T23:00"), utc("2026-03-27T23:00")),
        Span("2026-03-28", utc("2026-03-27T23:00"), utc("2026-03-28T23:00")),
        Span("2026-03-29", utc("2026-03-28T23:00"), utc("2026-03-29T22:00")),
        Span("2026-03-30", utc("2026-03-29T22:00"), utc("2026-03-30T22:00")),
    ]


def test_it_ends_each_span_in_exactly_one_window():
    rule = day_rule(NEW_YORK)
    # The windows share their edges; a span ending on an edge belongs to the earlier one.
    edges = [utc("2026-03-07T05:00"), utc("2026-03-08T05:00"), utc("2026-03-08T05:00")]
    edges += [utc("2026-03-09T04:00"), utc("2026-03-11T09:00")]
    keys = [s.key for since, until in pairwise(edges) for s in spans_ended(rule, since, until)]
    assert keys == ["2026-03-07", "2026-03-08", "2026-03-09", "2026-03-10"]
    assert spans_ended(rule, edges[0], edges[0]) == []
    assert spans_ended(rule, edges[1], edges[0]) == []


def test_it_ends_a_season_once():
    end = utc("2026-08-31T22:00")
    assert spans_ended(SEASON, end - US, end) == [span_of_key(SEASON, "summer-cup")]
    assert spans_ended(SEASON, end, end + timedelta(days=1)) == []
    assert spans_ended(SEASON, utc("2026-06-01T00:00"), end - US) == []


def test_it_refuses_a_window_holding_too_many_spans():
    rule = day_rule()
    start = utc("1800-01-01T00:00")
    assert len(spans_ended(rule, start, start + timedelta(days=MAX_SPANS_ENDED))) == MAX_SPANS_ENDED
    with pytest.raises(ValueError, match="More than"):
        spans_ended(rule, start, start + timedelta(days=MAX_SPANS_ENDED + 1))


# -- validate_rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (PeriodRule(kind="year"), "Unknown period kind"),
        (PeriodRule(kind="day", timezone="Mars/Olympus_Mons"), "Unknown time zone"),
        (PeriodRule(kind="day", timezone="../etc/passwd"), "Unknown time zone"),
        (PeriodRule(kind="day", timezone=""), "Unknown time zone"),
        (PeriodRule(kind="week", week_starts_on=0), "week_starts_on"),
        (PeriodRule(kind="week", week_starts_on=8), "week_starts_on"),
        (PeriodRule(kind="day", day_starts_at=time(4, 0, 30)), "whole minutes"),
        (PeriodRule(kind="day", day_starts_at=time(4, 0, tzinfo=UTC)), "naive"),
        (PeriodRule(kind="season", ends_at=utc("2026-07-01T00:00"), season_key="s"), "both"),
        (PeriodRule(kind="season", starts_at=utc("2026-07-01T00:00"), season_key="s"), "both"),
        (
            PeriodRule(
                kind="season",
                starts_at=utc("2026-07-01T00:00"),
                ends_at=utc("2026-07-01T00:00"),
                season_key="s",
            ),
            "end after it starts",
        ),
        (
            PeriodRule(
                kind="season",
                starts_at=datetime(2026, 7, 1),  # noqa: DTZ001
                ends_at=utc("2026-08-01T00:00"),
                season_key="s",
            ),
            "aware",
        ),
        (
            PeriodRule(
                kind="season", starts_at=utc("2026-07-01T00:00"), ends_at=utc("2026-08-01T00:00")
            ),
            "key",
        ),
        (PeriodRule(kind="month", starts_at=utc("2026-07-01T00:00")), "belong to a season"),
        (PeriodRule(kind="all_time", ends_at=utc("2026-07-01T00:00")), "belong to a season"),
    ],
)
def test_it_explains_an_invalid_rule(rule: PeriodRule, message: str):
    with pytest.raises(ValueError, match=message):
        validate_rule(rule)
    with pytest.raises(ValueError, match=message):
        span_at(rule, utc("2026-07-15T00:00"))


def test_it_accepts_valid_rules():
    validate_rule(PeriodRule(kind="all_time"))
    validate_rule(PeriodRule(kind="week", timezone=LORD_HOWE, week_starts_on=7))
    validate_rule(SEASON)


# -- properties ----------------------------------------------------------------------------

ZONES = [
    "UTC",
    PARIS,
    NEW_YORK,
    LORD_HOWE,
    "America/Sao_Paulo",  # its clocks used to change at midnight
    "America/St_Johns",
    "Asia/Kolkata",
    "Pacific/Chatham",
    "Pacific/Apia",
    "Africa/Casablanca",
    "Europe/Dublin",  # negative DST in the tz database
]

rules = st.builds(
    PeriodRule,
    kind=st.sampled_from(["day", "week", "month"]),
    timezone=st.sampled_from(ZONES),
    week_starts_on=st.integers(1, 7),
    day_starts_at=st.builds(time, st.integers(0, 23), st.sampled_from([0, 15, 30, 45, 59])),
)
instants = st.datetimes(
    min_value=datetime(1970, 1, 1),  # noqa: DTZ001
    max_value=datetime(2100, 1, 1),  # noqa: DTZ001
    timezones=st.sampled_from([UTC, ZoneInfo(PARIS), ZoneInfo(LORD_HOWE)]),
)


@settings(max_examples=300, deadline=None)
@given(rule=rules, instant=instants)
def test_it_holds_every_instant_in_the_span_its_key_names(rule: PeriodRule, instant: datetime):
    span = held(rule, instant)
    assert span.starts_at is not None
    assert span.ends_at is not None
    assert span.starts_at <= instant < span.ends_at
    assert span_of_key(rule, span.key) == span
    following = span_after(rule, span)
    assert following is not None
    assert following.starts_at == span.ends_at
    assert span_before(rule, following) == span
    first = date.fromisoformat(span.key + "-01" if rule.kind == "month" else span.key)
    assert span.starts_at == local_start(first, rule.day_starts_at, ZoneInfo(rule.timezone))
