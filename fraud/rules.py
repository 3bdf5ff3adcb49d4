"""The fraud rules: small named units in one registry.

Each rule reads the `Signals` of one completion (gathered without SQL, see
`fraud.signals`) and returns a contribution in [0, 1] with a reason a person can read.
`fraud.assess.fraud_assess` weighs them (`FRAUD_RULE_WEIGHTS`) and combines them into
one risk score in [0, 1]. A rule that needs data that was not available (Redis down)
returns nothing and is left out.
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings

from fraud.geo import Place, distance_km


@dataclass(frozen=True)
class PastCompletion:
    """One of the user's recent completions, as the signal store keeps it."""

    at: float  # Unix time
    action_id: str
    ip_prefix: str
    device: str
    delta: int
    place: Place | None = None  # where its address was (None: unknown, private, no database)


@dataclass(frozen=True)
class Signals:
    """Everything the rules may look at for one completion."""

    now: float
    action_id: str
    reward: int
    cooldown_seconds: int
    min_duration_seconds: int
    ip_prefix: str
    device: str
    date_joined: datetime
    score: int
    # None when the signal store could not be read: the rules that need it stand aside.
    history: list[PastCompletion] | None = None  # newest first
    accounts_on_ip: int | None = None
    place: Place | None = None
    unassessed: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RuleResult:
    contribution: float
    reason: str
    # What a reviewer needs to check the rule's finding (kept in the fraud log's details).
    evidence: dict[str, Any] | None = None


Rule = Callable[[Signals], RuleResult | None]
RULES: dict[str, Rule] = {}


def rule(name: str) -> Callable[[Rule], Rule]:
    def register(fn: Rule) -> Rule:
        RULES[name] = fn
        return fn

    return register


def combine(contributions: dict[str, float]) -> float:
    """One risk in [0, 1] from weighted contributions: the chance that at least one rule
    is right, were they independent (1 - prod(1 - w * c))."""
    clean = 1.0
    for value in contributions.values():
        clean *= 1.0 - max(0.0, min(1.0, value))
    return round(1.0 - clean, 6)


def _clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def _times(signals: Signals) -> list[float] | None:
    """Completion times, oldest first, this one included."""
    if signals.history is None:
        return None
    return [*sorted(past.at for past in signals.history), signals.now]


@rule("request_frequency")
def request_frequency(signals: Signals) -> RuleResult | None:
    """Completions per minute above what the action allows a person to do."""
    times = _times(signals)
    if times is None:
        return None
    recent = [t for t in times if t > signals.now - 60]
    if len(recent) < 5:
        return RuleResult(0.0, "")
    span = max(signals.now - recent[0], 1.0)
    per_minute = (len(recent) - 1) * 60 / span
    fastest = max(
        signals.cooldown_seconds,
        signals.min_duration_seconds,
        settings.FRAUD_HUMAN_MIN_SECONDS,
    )
    possible = 60 / fastest
    return RuleResult(
        _clamp(per_minute / possible - 1),
        f"{per_minute:.0f} completions a minute; a person manages about {possible:.0f}",
    )


@rule("score_jump")
def score_jump(signals: Signals) -> RuleResult | None:
    """Points won in the last window far above the user's own earlier score."""
    if signals.history is None:
        return None
    window = settings.FRAUD_SCORE_JUMP_WINDOW_SECONDS
    recent = sum(p.delta for p in signals.history if p.at > signals.now - window)
    recent += signals.reward
    before = max(signals.score + signals.reward - recent, settings.FRAUD_SCORE_JUMP_FLOOR)
    ratio = recent / before
    return RuleResult(
        _clamp((ratio - 1) / 2),
        f"{recent} points in {window // 60} minutes against {before} before",
    )


def timer_share(intervals: list[float]) -> tuple[float, float, float]:
    """(share of intervals within 3 % (at least 30 ms) of their median, median, tolerance)."""
    median = statistics.median(intervals)
    tolerance = max(0.03 * median, 0.03)
    share = sum(abs(gap - median) <= tolerance for gap in intervals) / len(intervals)
    return share, median, tolerance


@rule("regular_timing")
def regular_timing(signals: Signals) -> RuleResult | None:
    """Intervals between completions as even as a timer's (a script on a schedule).

    Robust to a missed beat or a retry: it asks what share of the intervals lie within
    3 % (at least 30 ms) of their median, not how much they vary on average. A person's
    intervals rarely agree that closely, even at a steady pace; a timer's do, but for the
    network's jitter.
    """
    times = _times(signals)
    if times is None:
        return None
    times = times[-16:]
    intervals = [b - a for a, b in itertools.pairwise(times)]
    if len(intervals) < 4:
        return RuleResult(0.0, "")
    share, median, tolerance = timer_share(intervals)
    shape = _clamp((share - 0.55) / 0.3)
    confidence = min(1.0, (len(intervals) + 4) / 16)
    return RuleResult(
        shape * confidence,
        f"{share:.0%} of {len(intervals)} intervals within {tolerance:.2f}s of {median:.2f}s",
    )


@rule("impossible_rate")
def impossible_rate(signals: Signals) -> RuleResult | None:
    """Two completions of an action closer together than its minimum duration."""
    if signals.history is None:
        return None
    if signals.min_duration_seconds <= 0:
        return RuleResult(0.0, "")
    same = [p.at for p in signals.history if p.action_id == signals.action_id]
    if not same:
        return RuleResult(0.0, "")
    gap = signals.now - max(same)
    return RuleResult(
        _clamp(1 - gap / signals.min_duration_seconds),
        f"{gap:.1f}s after the last one; the action takes {signals.min_duration_seconds}s",
    )


@rule("device_change")
def device_change(signals: Signals) -> RuleResult | None:
    """A different network or device than the user's last completion, shortly after it."""
    if not signals.history:
        return None if signals.history is None else RuleResult(0.0, "")
    last = signals.history[0]
    window = settings.FRAUD_DEVICE_WINDOW_SECONDS
    gap = signals.now - last.at
    if gap >= window:
        return RuleResult(0.0, "")
    changed = []
    if last.ip_prefix != signals.ip_prefix:
        changed.append("network")
    if last.device != signals.device:
        changed.append("device")
    weight = {0: 0.0, 1: 0.6, 2: 1.0}[len(changed)]
    return RuleResult(
        weight * (1 - gap / window),
        f"{' and '.join(changed)} changed {gap:.0f}s after the last completion" if changed else "",
    )


@rule("new_account")
def new_account(signals: Signals) -> RuleResult | None:
    """An account younger than a day."""
    age = signals.now - signals.date_joined.timestamp()
    limit = settings.FRAUD_NEW_ACCOUNT_SECONDS
    return RuleResult(
        _clamp(1 - age / limit),
        f"account {_duration(max(age, 0))} old",
    )


@rule("duplicate_completion")
def duplicate_completion(signals: Signals) -> RuleResult | None:
    """The same action completed again within seconds (a double submit or a loop)."""
    if signals.history is None:
        return None
    same = [p.at for p in signals.history if p.action_id == signals.action_id]
    if not same:
        return RuleResult(0.0, "")
    gap = signals.now - max(same)
    limit = settings.FRAUD_DUPLICATE_SECONDS
    return RuleResult(_clamp(1 - gap / limit), f"the same action {gap:.1f}s before")


@rule("ip_farm")
def ip_farm(signals: Signals) -> RuleResult | None:
    """Many accounts completing actions from one address (a farm of accounts)."""
    if signals.accounts_on_ip is None:
        return None
    full = settings.FRAUD_FARM_ACCOUNTS
    start = max(full // 3, 2)
    count = signals.accounts_on_ip
    return RuleResult(
        _clamp((count - start) / max(full - start, 1)),
        f"{count} accounts from this address in {settings.FRAUD_FARM_WINDOW_SECONDS // 60} min",
    )


@rule("impossible_travel")
def impossible_travel(signals: Signals) -> RuleResult | None:
    """Two completions from places farther apart than anyone travels in between: one
    account played from two places at once (shared or sold), not a script.

    Each place is only a point within its accuracy radius, so the distance counted is the
    least the player must have covered (the distance less both radii), and below
    FRAUD_TRAVEL_MIN_KM of it the rule never fires. Full strength at twice
    FRAUD_TRAVEL_MAX_KMH.
    """
    if signals.history is None or signals.place is None:
        return None
    last = next((past for past in signals.history if past.place is not None), None)
    if last is None or last.place is None:
        return RuleResult(0.0, "")
    here, there = signals.place, last.place
    distance = distance_km(there, here)
    least = distance - there.radius_km - here.radius_km
    if least < settings.FRAUD_TRAVEL_MIN_KM:
        return RuleResult(0.0, "")
    seconds = max(signals.now - last.at, 1.0)
    speed = least / (seconds / 3600)
    limit = settings.FRAUD_TRAVEL_MAX_KMH
    contribution = _clamp(speed / limit - 1)
    if contribution <= 0:
        return RuleResult(0.0, "")
    return RuleResult(
        contribution,
        f"{there.label()} to {here.label()}: {distance:,.0f} km in {_duration(seconds)}"
        f" (at least {speed:,.0f} km/h; a traveller manages {limit:,.0f})",
        evidence={
            "from": {
                **there.as_json(),
                "at": datetime.fromtimestamp(last.at, tz=UTC).isoformat(),
            },
            "to": {**here.as_json(), "at": datetime.fromtimestamp(signals.now, tz=UTC).isoformat()},
            "distanceKm": round(distance),
            "seconds": round(seconds),
            "speedKmh": round(speed),
        },
    )


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
