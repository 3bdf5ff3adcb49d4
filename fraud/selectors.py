"""What the review desk shows of one user, in words: why they are on it, their recent
completions and decisions beside an ordinary player's pace, and what an act would change.

Reads the ledger (every completion with its points, address, device and time), the fraud
logs and the audit trail. A ledger entry is tied to its completion's id by the entry id
that the flagged completion's log (`details.entryId`) and the accepted completion's audit
record (`payload.entryId`) keep: fraud knows completions only by id.
"""

from __future__ import annotations

import itertools
import statistics
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import F, Window
from django.db.models.functions import Lag
from django.utils import timezone

from accounts.models import Session, User
from fraud.labels import (
    RuleBar,
    device_label,
    percent,
    place_text,
    rule_bars,
    rule_label,
    span_label,
)
from fraud.models import AuditEvent, FraudLog, RiskProfile
from fraud.rules import timer_share
from leaderboard.selectors import leaderboard_rank_and_score
from scoreboard.models import ScoreEntry

TIMELINE_SIZE = 40
# Completions of other players read for an ordinary player's pace: the newest ones.
PACE_SAMPLE = 5000

STAFF_KINDS = (
    AuditEvent.Kind.USER_BANNED,
    AuditEvent.Kind.USER_UNBANNED,
    AuditEvent.Kind.COMPLETION_REVERSED,
    AuditEvent.Kind.FLAG_REVIEWED,
    AuditEvent.Kind.PROFILE_CLEARED,
    AuditEvent.Kind.PROFILE_WATCHED,
    AuditEvent.Kind.USER_ESCALATED,
)


@dataclass
class TimelineRow:
    """A completion, a refused attempt or a reversal, newest first on the page."""

    at: datetime
    kind: str  # completion, blocked, reversal, adjustment
    action: str
    points: int
    ip: str
    device: str
    user_agent: str
    place: str
    decision: str  # allowed, flagged, accepted (not yet known which), blocked, reversal
    risk: int | None = None
    rules: list[RuleBar] = field(default_factory=list)
    gap: str = ""  # since the attempt before
    gap_seconds: float | None = None
    completion_id: uuid.UUID | None = None
    entry_id: int | None = None
    reversed: bool = False

    @property
    def reversible(self) -> bool:
        return self.kind == "completion" and not self.reversed and self.completion_id is not None


@dataclass(frozen=True)
class Pace:
    """How fast the user went, and how fast an ordinary player goes."""

    attempts: int
    span_seconds: float
    median_gap: float | None
    timer_share: float | None
    tolerance: float | None
    action_seconds: int | None  # the fastest the action allows a person
    players_median_gap: float | None

    def words(self) -> str:
        if self.attempts == 0:
            return "No completions yet."
        if self.attempts == 1:
            return "1 completion so far."
        text = f"{self.attempts} completions in {span_label(self.span_seconds)}"
        if self.median_gap is not None:
            text += f", a median of {span_label(self.median_gap)} apart"
        if self.timer_share is not None and self.tolerance is not None:
            text += f"; {self.timer_share:.0%} of the intervals within {self.tolerance:.2f} s of it"
        return text + "."

    def ordinary(self) -> str:
        parts = []
        if self.action_seconds is not None:
            parts.append(f"the action allows a person one every {span_label(self.action_seconds)}")
        if self.players_median_gap is not None:
            parts.append(
                f"other players leave a median of {span_label(self.players_median_gap)}"
                " between completions"
            )
        return ("An ordinary player: " + "; ".join(parts) + ".") if parts else ""


@dataclass(frozen=True)
class Finding:
    """A rule that fired on the user: how often, how strongly, and why (its latest reason)."""

    name: str
    label: str
    times: int
    strongest: int
    reason: str


@dataclass(frozen=True)
class Decision:
    at: datetime
    what: str
    actor: str
    note: str
    detail: str


@dataclass(frozen=True)
class DeskSummary:
    status: str
    status_code: str
    banned: bool
    risk: int
    last_risk: int | None
    score: int
    rank: int | None
    flags: int
    blocks: int
    open_logs: int
    account_age: str
    findings: list[Finding]
    pace: Pace

    def headline(self) -> str:
        """Why the user is on the desk, in one paragraph."""
        standing = "Banned" if self.banned else self.status
        board = f"rank {self.rank} on the board" if self.rank else "not on the board"
        return (
            f"{standing}, rolling risk {self.risk} %; {self.flags} completions flagged and"
            f" {self.blocks} blocked; {self.score:,} points, {board}; account {self.account_age}"
            " old."
        )


def _links(user: User, entry_ids: list[int]) -> dict[int, dict[str, Any]]:
    """For each ledger entry: its completion's id and what the rules said of it, from the
    accepted audit record and (sooner: it is written in the completion's transaction) the
    flagged log."""
    found: dict[int, dict[str, Any]] = {}
    if not entry_ids:
        return found
    audits = AuditEvent.objects.filter(
        user=user, kind=AuditEvent.Kind.COMPLETION_ACCEPTED, payload__entryId__in=entry_ids
    ).values_list("payload", "completion_id", "risk_score")
    for payload, completion_id, risk in audits:
        found[int(payload["entryId"])] = {
            "completion_id": completion_id,
            "risk": risk,
            "rules": payload.get("rules"),
            "reasons": payload.get("reasons"),
            "place": payload.get("place"),
            "decision": "flagged" if payload.get("flagged") else "allowed",
        }
    flagged = FraudLog.objects.filter(
        user=user, event=FraudLog.Event.FLAGGED, details__entryId__in=entry_ids
    ).values_list("details", "completion_id", "risk_score", "rules", "reasons")
    for details, completion_id, risk, rules, reasons in flagged:
        found[int(details["entryId"])] = {
            "completion_id": completion_id,
            "risk": risk,
            "rules": rules,
            "reasons": reasons,
            "place": details.get("place"),
            "decision": "flagged",
        }
    return found


def desk_timeline(*, user: User, size: int = TIMELINE_SIZE) -> list[TimelineRow]:
    """The user's newest ledger entries and refused attempts, newest first."""
    entries = list(ScoreEntry.objects.filter(user=user).order_by("-created_at", "-id")[:size])
    links = _links(user, [entry.pk for entry in entries])
    reversed_ids = set(
        ScoreEntry.objects.filter(reverses_id__in=[e.pk for e in entries]).values_list(
            "reverses_id", flat=True
        )
    )
    rows: list[TimelineRow] = []
    for entry in entries:
        link = links.get(entry.pk, {})
        kind = str(entry.reason)
        rows.append(
            TimelineRow(
                at=entry.created_at,
                kind=kind,
                action=entry.action_id or (entry.note if kind != "completion" else "") or "-",
                points=entry.delta,
                ip=entry.ip or "-",
                device=device_label(entry.user_agent),
                user_agent=entry.user_agent,
                place=place_text(link.get("place")),
                # Accepted, but whether it was flagged is not known until its audit
                # record is written (or for an entry older than the link).
                decision=link.get("decision", "accepted") if kind == "completion" else kind,
                risk=percent(link["risk"]) if "risk" in link else None,
                rules=rule_bars(link.get("rules"), link.get("reasons")),
                completion_id=link.get("completion_id"),
                entry_id=entry.pk,
                reversed=entry.pk in reversed_ids,
            )
        )
    for log in FraudLog.objects.filter(user=user, event=FraudLog.Event.BLOCKED).order_by(
        "-created_at"
    )[:size]:
        details = log.details if isinstance(log.details, dict) else {}
        rows.append(
            TimelineRow(
                at=log.created_at,
                kind="blocked",
                action=str(details.get("actionId") or "-"),
                points=0,
                ip=log.ip or "-",
                device=device_label(log.user_agent),
                user_agent=log.user_agent,
                place=place_text(details.get("place")),
                decision="blocked",
                risk=percent(log.risk_score),
                rules=rule_bars(log.rules, log.reasons),
            )
        )
    rows.sort(key=lambda row: row.at, reverse=True)
    rows = rows[:size]
    attempts = [row for row in rows if row.kind in ("completion", "blocked")]
    for newer, older in itertools.pairwise(attempts):
        newer.gap_seconds = (newer.at - older.at).total_seconds()
        newer.gap = span_label(newer.gap_seconds)
    return rows


def players_median_gap(*, user: User, now: datetime | None = None) -> float | None:
    """The median time between two completions of the same player, over other players'
    newest completions of the last day (banned players left out)."""
    now = now or timezone.now()
    completions = ScoreEntry.objects.filter(
        reason=ScoreEntry.Reason.COMPLETION, created_at__gte=now - timedelta(days=1)
    )
    cut = completions.order_by("-id").values_list("id", flat=True)[PACE_SAMPLE - 1 : PACE_SAMPLE]
    sample = completions.exclude(user=user).exclude(user__is_banned=True)
    if cut:
        sample = sample.filter(id__gte=cut[0])
    pairs = sample.annotate(
        before=Window(
            Lag("created_at"), partition_by=[F("user_id")], order_by=F("created_at").asc()
        )
    ).values_list("created_at", "before")
    gaps = [(at - before).total_seconds() for at, before in pairs if before is not None]
    return statistics.median(gaps) if gaps else None


def _pace(user: User, rows: list[TimelineRow], logs: list[FraudLog]) -> Pace:
    attempts = sorted(row.at for row in rows if row.kind in ("completion", "blocked"))
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(attempts)]
    share = median = tolerance = None
    if len(gaps) >= 2:
        share, median, tolerance = timer_share(gaps)
    elif gaps:
        median = gaps[0]
    action_seconds = None
    for log in logs:
        details = log.details if isinstance(log.details, dict) else {}
        if "cooldownSeconds" in details:
            action_seconds = max(
                int(details.get("cooldownSeconds") or 0),
                int(details.get("minDurationSeconds") or 0),
                int(settings.FRAUD_HUMAN_MIN_SECONDS),
            )
            break
    return Pace(
        attempts=len(attempts),
        span_seconds=(attempts[-1] - attempts[0]).total_seconds() if attempts else 0.0,
        median_gap=median,
        timer_share=share,
        tolerance=tolerance,
        action_seconds=action_seconds,
        players_median_gap=players_median_gap(user=user),
    )


def _findings(logs: list[FraudLog]) -> list[Finding]:
    """The rules that fired most on the user's logs, with the newest reason of each."""
    times: dict[str, int] = {}
    strongest: dict[str, float] = {}
    reason: dict[str, str] = {}
    for log in logs:  # newest first
        rules = log.rules if isinstance(log.rules, dict) else {}
        reasons = log.reasons if isinstance(log.reasons, dict) else {}
        for name, value in rules.items():
            if not isinstance(value, int | float) or value <= 0:
                continue
            times[name] = times.get(name, 0) + 1
            strongest[name] = max(strongest.get(name, 0.0), float(value))
            reason.setdefault(name, str(reasons.get(name) or ""))
    ranked = sorted(times, key=lambda name: (times[name], strongest[name]), reverse=True)
    return [
        Finding(name, rule_label(name), times[name], percent(strongest[name]), reason[name])
        for name in ranked[:4]
    ]


def desk_summary(*, user: User, rows: list[TimelineRow]) -> DeskSummary:
    profile = RiskProfile.objects.filter(user=user).first()
    logs = list(FraudLog.objects.filter(user=user).order_by("-created_at")[:200])
    ranked = leaderboard_rank_and_score(user_id=user.pk)
    age = (timezone.now() - user.date_joined).total_seconds()
    return DeskSummary(
        status=profile.get_status_display() if profile else "Clear",
        status_code=profile.status if profile else RiskProfile.Status.CLEAR,
        banned=user.is_banned,
        risk=percent(profile.rolling_risk) if profile else 0,
        last_risk=percent(logs[0].risk_score) if logs else None,
        score=user.score,
        rank=ranked[0] if ranked else None,
        flags=profile.flags_count if profile else 0,
        blocks=profile.blocks_count if profile else 0,
        open_logs=sum(1 for log in logs if log.reviewed_at is None),
        account_age=span_label(max(age, 0.0)),
        findings=_findings(logs),
        pace=_pace(user, rows, logs),
    )


def desk_decisions(*, user: User, size: int = 20) -> list[Decision]:
    """Reviews, escalations and every act of staff on the user, newest first."""
    events = AuditEvent.objects.filter(user=user, kind__in=STAFF_KINDS).order_by("-created_at")
    decisions = []
    for event in events[:size]:
        payload = event.payload if isinstance(event.payload, dict) else {}
        detail = ""
        if event.kind == AuditEvent.Kind.COMPLETION_REVERSED:
            detail = f"{payload.get('delta', 0):+,} points, score after {payload.get('scoreAfter')}"
        elif event.kind == AuditEvent.Kind.FLAG_REVIEWED:
            detail = f"outcome: {payload.get('outcome', '')}"
        elif payload.get("previousStatus"):
            detail = f"was {payload['previousStatus'].replace('_', ' ')}"
        elif payload.get("reason"):
            detail = str(payload["reason"])
        decisions.append(
            Decision(
                at=event.created_at,
                what=event.get_kind_display(),
                actor=str(payload.get("actor", "")),
                note=str(payload.get("note", "")),
                detail=detail,
            )
        )
    return decisions


@dataclass(frozen=True)
class ChartDot:
    x: float
    decision: str
    label: str


@dataclass(frozen=True)
class Chart:
    """The timeline on a line of 1,000 units: the user's attempts, and where an ordinary
    player's would fall at their pace over the same span (drawn with SVG attributes, which
    the CSP allows; no inline style)."""

    user: list[ChartDot]
    ordinary: list[ChartDot]
    span: str
    ordinary_gap: str
    ordinary_beyond: bool  # an ordinary player's second completion falls past the span


LEFT, WIDTH = 40.0, 920.0


def desk_chart(*, rows: list[TimelineRow], pace: Pace) -> Chart | None:
    attempts = sorted((r for r in rows if r.kind in ("completion", "blocked")), key=lambda r: r.at)
    if len(attempts) < 2:
        return None
    start = attempts[0].at
    span = max((attempts[-1].at - start).total_seconds(), 1e-3)

    def x(seconds: float) -> float:
        return round(LEFT + WIDTH * seconds / span, 1)

    dots = [
        ChartDot(
            x((row.at - start).total_seconds()),
            row.decision,
            f"{timezone.localtime(row.at):%H:%M:%S.%f}"[:-3] + f" {row.action} {row.decision}",
        )
        for row in attempts
    ]
    gap = pace.players_median_gap or pace.action_seconds
    ordinary: list[ChartDot] = []
    if gap:
        count = min(int(span // gap) + 1, 200)
        ordinary = [
            ChartDot(x(k * gap), "ordinary", f"+{span_label(k * gap)}") for k in range(count)
        ]
    return Chart(
        user=dots,
        ordinary=ordinary,
        span=span_label(span),
        ordinary_gap=span_label(gap) if gap else "",
        ordinary_beyond=bool(gap) and len(ordinary) < 2,
    )


def board_rank_with(*, user: User, score: int) -> int | None:
    """The rank the user would have with `score` (None: off the board). Ties go to who
    reached the score first, so a score the user reaches now ranks after equal ones."""
    if score <= 0:
        return None
    return User.objects.rankable().exclude(pk=user.pk).filter(score__gte=score).count() + 1


def active_sessions(*, user: User) -> int:
    return Session.objects.filter(user=user).active().count()
