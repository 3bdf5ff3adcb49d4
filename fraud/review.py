"""The deeper review of one user's history over days (run by Celery, never on a request).

Reads the ledger, whose entries carry the action, address, user agent and time of every
completion, and the fraud logs. Each check gives a contribution in [0, 1] and a reason,
weighted by `FRAUD_REVIEW_WEIGHTS` and combined as the live rules are.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from accounts.models import User
from fraud.assess import ROLLING_WEIGHT, alerts_queue, review_queue, review_window
from fraud.models import AuditEvent, FraudLog, RiskProfile
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


class Population:
    """What every player won in a review's period (completions only): how many players,
    and the top 1 % (and two more) of their totals. Read once for a batch of reviews of
    the same period, on first use."""

    def __init__(self, since: datetime) -> None:
        self.since = since
        self._read: tuple[int, list[tuple[uuid.UUID, int]]] | None = None

    def _load(self) -> tuple[int, list[tuple[uuid.UUID, int]]]:
        if self._read is None:
            won = (
                ScoreEntry.objects.filter(
                    created_at__gte=self.since, reason=ScoreEntry.Reason.COMPLETION
                )
                .values("user_id")
                .annotate(points=Sum("delta"))
            )
            players = won.count()
            top = list(
                won.order_by("-points").values_list("user_id", "points")[: players // 100 + 2]
            )
            self._read = players, top
        return self._read

    def p99_of_others(self, user_id: uuid.UUID) -> tuple[int, int]:
        """(other players, the 99th percentile of what the others won) for a player who
        won something in the period (so counted among the players)."""
        players, top = self._load()
        others = players - 1
        ranked = [points for uid, points in top if uid != user_id]
        return others, ranked[others // 100] if others > 0 else 0


def _score_growth(user: User, population: Population, points: int) -> RuleResult:
    """Points won in the period against what the most active other players (the 99th
    percentile) won in it."""
    if points <= 0:
        return RuleResult(0.0, "")
    players, p99 = population.p99_of_others(user.pk)
    if players < 20:
        return RuleResult(0.0, "")
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


def history_assess(
    *, user: User, now: datetime | None = None, population: Population | None = None
) -> HistoryRisk:
    """Score a user's last FRAUD_REVIEW_DAYS days (`population`: the period's players,
    shared by a batch of reviews of the same period)."""
    now = now or timezone.now()
    since = population.since if population is not None else _since(now)
    population = population or Population(since)
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
        "score_growth": lambda: _score_growth(user, population, points),
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


def _since(now: datetime) -> datetime:
    return now - timedelta(days=settings.FRAUD_REVIEW_DAYS)


@transaction.atomic
def user_review(
    *,
    user_id: uuid.UUID,
    key: str,
    user: User | None = None,
    population: Population | None = None,
) -> FraudLog | None:
    """Analyse a user's history over days; escalate them to review if it looks scripted.

    Idempotent per `key`: a second run with the same key changes nothing. (`user` and
    `population`: read already by a batch of reviews.)
    """
    user = user or User.objects.filter(pk=user_id).first()
    if user is None:
        return None
    if FraudLog.objects.filter(event_key=f"review:{user_id}:{key}").exists():
        return None
    risk = history_assess(user=user, population=population)
    now = timezone.now()
    try:
        with transaction.atomic():
            log = FraudLog.objects.create(
                user=user,
                event=FraudLog.Event.REVIEWED,
                risk_score=min(risk.score, 1.0),
                rules=risk.rules,
                reasons=risk.reasons,
                details={"key": key, "days": settings.FRAUD_REVIEW_DAYS},
                event_key=f"review:{user_id}:{key}",
                reviewed_at=None,
            )
    except IntegrityError:  # the same review ran at the same time elsewhere
        return None
    profile, _ = RiskProfile.objects.select_for_update().get_or_create(user=user)
    profile.rolling_risk = profile.rolling_risk * (1 - ROLLING_WEIGHT) + risk.score * ROLLING_WEIGHT
    profile.last_reviewed_at = now
    escalate = (
        risk.score >= settings.FRAUD_ESCALATE_THRESHOLD
        and profile.status != RiskProfile.Status.UNDER_REVIEW
    )
    if escalate:
        profile.status = RiskProfile.Status.UNDER_REVIEW
    elif risk.score >= settings.FRAUD_FLAG_THRESHOLD and profile.status == RiskProfile.Status.CLEAR:
        profile.status = RiskProfile.Status.WATCH
    profile.save()
    if escalate:
        FraudLog.objects.create(
            user=user,
            event=FraudLog.Event.ESCALATED,
            risk_score=min(risk.score, 1.0),
            rules=risk.rules,
            reasons=risk.reasons,
            details={"key": key},
            event_key=f"escalated:{user_id}:{key}",
        )
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.USER_ESCALATED,
            user=user,
            risk_score=risk.score,
            payload={"actor": "fraud review", "rules": risk.rules},
        )
        transaction.on_commit(alerts_queue, robust=True)
    return log


def review_key(flagged_at: datetime) -> str:
    """The key of a flagged user's live review: one a user and FRAUD_REVIEW_WINDOW_SECONDS
    window, however many flags and blocks the window brings."""
    return f"live:{review_window(flagged_at)}"


def reviews_due(*, now: datetime | None = None) -> int:
    """Review every user flagged or blocked since their last review (in the sweep's
    lookback) whose review of that flag's window has not run: the live path's batch, one
    task for however many users a burst of flags brings. They share the period's
    population (one read). Returns how many were reviewed."""
    now = now or timezone.now()
    due = list(
        RiskProfile.objects.filter(
            Q(last_reviewed_at__isnull=True) | Q(last_reviewed_at__lt=F("last_flagged_at")),
            last_flagged_at__gte=now - settings.FRAUD_SWEEP_LOOKBACK,
        ).values_list("user_id", "last_flagged_at")[: settings.FRAUD_REVIEW_BATCH_MAX]
    )
    if not due:
        return 0
    users = User.objects.in_bulk([user_id for user_id, _ in due])
    population = Population(_since(now))
    reviewed = 0
    for user_id, flagged_at in due:
        user = users.get(user_id)
        if (
            user is not None
            and flagged_at is not None
            and user_review(
                user_id=user_id, key=review_key(flagged_at), user=user, population=population
            )
        ):
            reviewed += 1
    return reviewed


def review_sweep(*, now: datetime | None = None) -> int:
    """Queue a review for every user flagged or assessed without signals since their last
    review. Returns how many were queued."""
    now = now or timezone.now()
    window = now - settings.FRAUD_SWEEP_LOOKBACK
    flagged = RiskProfile.objects.filter(
        Q(last_reviewed_at__isnull=True) | Q(last_reviewed_at__lt=F("last_flagged_at")),
        last_flagged_at__gte=window,
    ).values_list("user_id", flat=True)
    unassessed = (
        AuditEvent.objects.filter(
            kind=AuditEvent.Kind.COMPLETION_ACCEPTED,
            created_at__gte=window,
            payload__assessed=False,
        )
        .values_list("user_id", flat=True)
        .distinct()
    )
    users = {*flagged, *(u for u in unassessed if u is not None)}
    slot = int(now.timestamp() // settings.FRAUD_SWEEP_SECONDS)
    for user_id in users:
        review_queue(user_id=user_id, key=f"sweep:{slot}:{user_id}")
    alerts_queue()
    return len(users)
