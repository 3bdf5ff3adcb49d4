"""The deeper review of one user's history over days (run by Celery, never on a request).

Reads the ledger, whose entries carry the action, address, user agent and time of every
completion, and the fraud logs. Each check gives a contribution in [0, 1] and a reason,
weighted by `FRAUD_REVIEW_WEIGHTS` and combined as the live rules are.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from accounts.models import User
from fraud.models import FraudLog
from fraud.rules import RuleResult, combine, timer_share
from fraud.signals import ip_prefix
from scoreboard.models import ScoreEntry

MIN_ENTRIES = 12
REVIEW_CHECKS = (
    "hour_spread",
    "interval_regularity",
    "ip_diversity",
    "score_growth",
    "flag_history",
)


def _clamp(value: float) -> float:
    return max(0.0, min(1.0, value))


def _hour_spread(times: list[datetime]) -> RuleResult:
    """Active in nearly every hour of the day: people sleep, scripts do not."""
    span = times[-1] - times[0] if times else timedelta(0)
    if len(times) < MIN_ENTRIES or span < timedelta(hours=20):
        return RuleResult(0.0, "")
    hours = {t.hour for t in times}
    return RuleResult(_clamp((len(hours) - 16) / 6), f"active in {len(hours)} of 24 hours")


def _regularity(times: list[datetime]) -> RuleResult:
    """Intervals between completions as even as a timer's, over the whole period."""
    stamps = [t.timestamp() for t in times]
    intervals = [b - a for a, b in itertools.pairwise(stamps)]
    if len(intervals) < MIN_ENTRIES:
        return RuleResult(0.0, "")
    share, median, _ = timer_share(intervals)
    return RuleResult(
        _clamp((share - 0.5) / 0.4), f"{share:.0%} of {len(intervals)} intervals near {median:.1f}s"
    )


def _ip_diversity(ips: list[str | None]) -> RuleResult:
    """Completions from many networks (a shared or rotated account)."""
    networks = {ip_prefix(ip) for ip in ips if ip}
    return RuleResult(_clamp((len(networks) - 3) / 7), f"{len(networks)} networks")


def _score_growth(user: User, since: datetime, points: int) -> RuleResult:
    """Points won in the period against what the most active other players (the 99th
    percentile) won in it."""
    won = (
        ScoreEntry.objects.filter(created_at__gte=since, reason=ScoreEntry.Reason.COMPLETION)
        .exclude(user=user)
        .values("user_id")
        .annotate(points=Sum("delta"))
    )
    players = won.count()
    if players < 20 or points <= 0:
        return RuleResult(0.0, "")
    p99 = won.order_by("-points").values_list("points", flat=True)[players // 100]
    ratio = points / max(p99, 1)
    return RuleResult(
        _clamp((ratio - 1) / 2), f"{points} points, the top 1% of players won {p99} or more"
    )


def _flag_history(user: User, since: datetime) -> RuleResult:
    """How often the live rules flagged or blocked the user in the period."""
    counts = dict(
        FraudLog.objects.filter(
            user=user,
            created_at__gte=since,
            event__in=[FraudLog.Event.FLAGGED, FraudLog.Event.BLOCKED],
        )
        .values_list("event")
        .annotate(n=Count("id"))
        .values_list("event", "n")
    )
    flags, blocks = counts.get("flagged", 0), counts.get("blocked", 0)
    return RuleResult(_clamp((flags + 3 * blocks) / 10), f"{flags} flags and {blocks} blocks")


class HistoryRisk:
    def __init__(self, rules: dict[str, float], reasons: dict[str, str]) -> None:
        self.rules, self.reasons = rules, reasons
        self.score = combine(rules)


def history_assess(*, user: User, now: datetime | None = None) -> HistoryRisk:
    """Score a user's last FRAUD_REVIEW_DAYS days."""
    now = now or timezone.now()
    since = now - timedelta(days=settings.FRAUD_REVIEW_DAYS)
    entries = list(
        ScoreEntry.objects.filter(
            user=user, created_at__gte=since, reason=ScoreEntry.Reason.COMPLETION
        )
        .order_by("created_at")
        .values_list("created_at", "ip", "delta")
    )
    times = [created for created, _, _ in entries]
    points = sum(delta for _, _, delta in entries)
    checks: dict[str, Callable[[], RuleResult]] = {
        "hour_spread": lambda: _hour_spread(times),
        "interval_regularity": lambda: _regularity(times),
        "ip_diversity": lambda: _ip_diversity([ip for _, ip, _ in entries]),
        "score_growth": lambda: _score_growth(user, since, points),
        "flag_history": lambda: _flag_history(user, since),
    }
    rules: dict[str, float] = {}
    reasons: dict[str, str] = {}
    assert tuple(checks) == REVIEW_CHECKS  # noqa: S101 - the names settings may weigh
    for name, check in checks.items():
        weight = settings.FRAUD_REVIEW_WEIGHTS.get(name, 0.0)
        if weight <= 0:
            continue
        result = check()
        if result.contribution > 0:
            rules[name] = round(weight * result.contribution, 4)
            reasons[name] = result.reason
    return HistoryRisk(rules, reasons)
