"""Fraud: assessing completions, recording decisions, and what staff do about them.

`fraud_assess` runs on the completion path before its transaction: no SQL, one Redis round
trip to read the signals; `fraud_remember` adds its writes to the completion's
after-commit round trip (`core.redis_batch`). Everything
that needs the database (fraud logs, risk profiles, reviews, alerts) happens in the
completion's own transaction or in Celery tasks.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import Session, User
from accounts.state import account_state_set, state_of
from core import metrics
from core.enqueue import task_enqueue
from core.oncommit import after_commit
from core.redis_batch import redis_later
from fraud.geo import Place, place_of
from fraud.models import AuditEvent, FraudLog, RiskProfile
from fraud.rules import RULES, PastCompletion, Signals, combine
from fraud.signals import RedisSignalStore, device_of, ip_prefix, signal_store
from scoreboard.models import ScoreEntry
from scoreboard.services import AlreadyReversedError, ledger_reverse

logger = logging.getLogger(__name__)

# Weight of the newest risk in a profile's rolling risk.
ROLLING_WEIGHT = 0.3


@dataclass(frozen=True)
class RiskAssessment:
    """The risk of one completion: the combined score, and each rule that fired."""

    score: float
    rules: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    # False when the signal store was down: only the rules that need none were run.
    assessed: bool = True
    ip_prefix: str = ""
    device: str = ""
    # Where the completion came from (None: no GeoIP database, a private or unknown
    # address), and what the rules that fired found (the two places of a travel).
    place: Place | None = None
    evidence: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        return self.score >= settings.FRAUD_FLAG_THRESHOLD

    @property
    def blocked(self) -> bool:
        return self.score >= settings.FRAUD_BLOCK_THRESHOLD

    def public_reasons(self) -> list[str]:
        """What a refused client may be told: the reasons, never the weights."""
        strongest_first = sorted(self.rules, key=self.rules.__getitem__, reverse=True)
        return [self.reasons.get(name) or name for name in strongest_first]

    def as_details(self) -> dict[str, Any]:
        details = {"rules": self.rules, "reasons": self.reasons, "assessed": self.assessed}
        return {**details, **self.where()}

    def where(self) -> dict[str, Any]:
        """The completion's place and the rules' evidence, for logs and audit records."""
        found: dict[str, Any] = {}
        if self.place is not None:
            found["place"] = {"country": self.place.country, "city": self.place.city}
        if self.evidence:
            found["evidence"] = self.evidence
        return found


def _rules_off() -> bool:
    """Every rule's weight is 0: no assessment, and no signals to read or keep."""
    return not any(weight > 0 for weight in settings.FRAUD_RULE_WEIGHTS.values())


SignalRead = tuple[list[PastCompletion], int, int | None]


@dataclass
class SignalPrefetch:
    """A completion's fraud signals, read ahead in the caller's Redis round trip."""

    # The signals, or the error that kept them from being read; None: not read ahead.
    found: SignalRead | Exception | None = None


def fraud_signals_prefetch(*, user_id: uuid.UUID, ip: str | None, now: datetime) -> SignalPrefetch:
    """Queue the read `fraud_assess` needs in the enclosing `redis_batch()` (sent when the
    block ends, with the caller's other commands), and pass the result to `fraud_assess`.
    Off Redis, or with the rules off, `fraud_assess` reads (or needs) nothing itself."""
    prefetch = SignalPrefetch()
    store = signal_store()
    if _rules_off() or not isinstance(store, RedisSignalStore):
        return prefetch

    def queue(pipe: Any) -> None:
        store.read_queue(pipe, user_id=user_id, ip=ip, now=now.timestamp())

    def done(outcome: list[Any] | Exception) -> None:
        try:
            if isinstance(outcome, Exception):
                raise outcome
            prefetch.found = store.read_replies(outcome)
        except Exception as exc:
            prefetch.found = exc

    redis_later(queue, done)
    return prefetch


def fraud_assess(
    *,
    user: User,
    action_id: str,
    reward: int,
    cooldown_seconds: int,
    min_duration_seconds: int,
    ip: str | None,
    user_agent: str,
    now: datetime,
    prefetched: SignalPrefetch | None = None,
) -> RiskAssessment:
    """Score a completion before its transaction. No SQL; one Redis round trip, or none
    with the signals `prefetched` (`fraud_signals_prefetch`, same user, address and time).

    If the signal store is down the completion is not refused for that: the rules that
    need no store still run, and the assessment says it is incomplete (`assessed`).
    """
    if _rules_off():
        return RiskAssessment(score=0.0)  # nothing to read
    timestamp = now.timestamp()
    prefix, device, place = ip_prefix(ip), device_of(user_agent), place_of(ip)
    history: list[PastCompletion] | None = None
    accounts_on_ip: int | None = None
    score: int | None = None
    try:
        found = prefetched.found if prefetched is not None else None
        if isinstance(found, Exception):
            raise found
        history, accounts_on_ip, score = found or signal_store().read(
            user_id=user.pk, ip=ip, now=timestamp
        )
    except Exception:
        metrics.backing_service_errors.labels("redis").inc()
        logger.warning("fraud signals unavailable; assessing %s without them", user.pk)
    signals = Signals(
        now=timestamp,
        action_id=action_id,
        reward=reward,
        cooldown_seconds=cooldown_seconds,
        min_duration_seconds=min_duration_seconds,
        ip_prefix=prefix,
        device=device,
        date_joined=user.date_joined,
        # The score the user's last completion left (no SQL); the row only without one.
        score=score if score is not None else user.score,
        history=history,
        accounts_on_ip=accounts_on_ip,
        place=place,
    )
    rules: dict[str, float] = {}
    reasons: dict[str, str] = {}
    evidence: dict[str, dict[str, Any]] = {}
    for name, evaluate in RULES.items():
        weight = settings.FRAUD_RULE_WEIGHTS.get(name, 0.0)
        if weight <= 0:
            continue
        result = evaluate(signals)
        if result is None or result.contribution <= 0:
            continue
        rules[name] = round(weight * result.contribution, 4)
        reasons[name] = result.reason
        if result.evidence:
            evidence[name] = result.evidence
    return RiskAssessment(
        score=combine(rules),
        rules=rules,
        reasons=reasons,
        assessed=history is not None,
        ip_prefix=prefix,
        device=device,
        place=place,
        evidence=evidence,
    )


def fraud_remember(
    *,
    user_id: uuid.UUID,
    action_id: str,
    delta: int,
    risk: RiskAssessment,
    at: datetime,
    score: int | None = None,
) -> None:
    """Add an accepted or blocked completion to the signals of the next assessment.

    With Redis, commands of the request's after-commit round trip
    (`core.redis_batch`); a failure only makes the rules forget this one.
    """
    if _rules_off():
        return
    past = PastCompletion(at.timestamp(), action_id, risk.ip_prefix, risk.device, delta, risk.place)
    store = signal_store()

    def forgot() -> None:
        metrics.backing_service_errors.labels("redis").inc()
        logger.warning("could not remember a completion of %s for the fraud rules", user_id)

    if isinstance(store, RedisSignalStore):

        def queue(pipe: Any) -> None:
            store.remember_queue(pipe, user_id=user_id, past=past, score=score)

        def done(outcome: list[Any] | Exception) -> None:
            if isinstance(outcome, Exception) or any(isinstance(r, Exception) for r in outcome):
                forgot()

        redis_later(queue, done)
        return
    try:
        store.remember(user_id=user_id, past=past, score=score)
    except Exception:
        forgot()


def _profile_touch(*, user_id: uuid.UUID, risk: float, blocked: bool, now: datetime) -> None:
    """Count a flag or a block on the user's risk profile (made on first use)."""
    RiskProfile.objects.get_or_create(user_id=user_id)
    RiskProfile.objects.filter(user_id=user_id).update(
        rolling_risk=F("rolling_risk") * (1 - ROLLING_WEIGHT) + risk * ROLLING_WEIGHT,
        flags_count=F("flags_count") + (0 if blocked else 1),
        blocks_count=F("blocks_count") + (1 if blocked else 0),
        last_flagged_at=now,
    )
    RiskProfile.objects.filter(user_id=user_id, status=RiskProfile.Status.CLEAR).update(
        status=RiskProfile.Status.WATCH
    )


def _log_decision(
    *,
    event: str,
    user_id: uuid.UUID,
    completion_id: uuid.UUID | None,
    risk: RiskAssessment,
    ip: str | None,
    user_agent: str,
    details: dict[str, Any],
    event_key: str,
) -> FraudLog:
    """A flagged or blocked completion's log and profile, in the caller's transaction; the
    user's review queued after commit."""
    now = timezone.now()
    log = FraudLog.objects.create(
        user_id=user_id,
        completion_id=completion_id,
        event=event,
        risk_score=min(risk.score, 1.0),
        rules=risk.rules,
        reasons=risk.reasons,
        ip=ip,
        user_agent=user_agent[:512],
        details={**details, "assessed": risk.assessed, **risk.where()},
        event_key=event_key,
    )
    _profile_touch(
        user_id=user_id, risk=risk.score, blocked=event == FraudLog.Event.BLOCKED, now=now
    )
    after_commit(_queue_review, user_id=user_id, key=_review_key(now))
    return log


def fraud_log_flagged(
    *,
    user_id: uuid.UUID,
    completion_id: uuid.UUID,
    risk: RiskAssessment,
    ip: str | None,
    user_agent: str,
    details: dict[str, Any],
) -> FraudLog:
    """Record a flagged completion, in the completion's transaction; queue its review."""
    return _log_decision(
        event=FraudLog.Event.FLAGGED,
        user_id=user_id,
        completion_id=completion_id,
        risk=risk,
        ip=ip,
        user_agent=user_agent,
        details=details,
        event_key=f"flagged:{completion_id}",
    )


def fraud_log_blocked(
    *,
    user_id: uuid.UUID,
    nonce: str,
    risk: RiskAssessment,
    ip: str | None,
    user_agent: str,
    details: dict[str, Any],
) -> FraudLog | None:
    """Record a refused completion (one row per action token, however often it is sent),
    count it on the profile, queue a review and tell the security team. Nothing reaches
    the ledger."""
    try:
        with transaction.atomic():
            log = _log_decision(
                event=FraudLog.Event.BLOCKED,
                user_id=user_id,
                completion_id=None,
                risk=risk,
                ip=ip,
                user_agent=user_agent,
                details=details,
                event_key=f"blocked:{nonce}",
            )
    except IntegrityError:  # this token was refused before
        return None
    transaction.on_commit(_queue_alerts, robust=True)
    return log


def _review_key(now: datetime) -> str:
    """One review per user per minute, however many flags and blocks the minute brings."""
    return f"live:{int(now.timestamp() // 60)}"


def _queue(name: str, **kwargs: Any) -> None:
    try:
        task_enqueue(name, **kwargs)
    except Exception:  # the broker is down: the sweep catches up with reviews and alerts
        metrics.backing_service_errors.labels("celery").inc()
        logger.exception("could not queue %s", name)


def _queue_review(*, user_id: uuid.UUID, key: str) -> None:
    _queue("fraud.user_review", user_id=str(user_id), key=key)


def _queue_alerts() -> None:
    _queue("fraud.alerts_send")


# ---------------------------------------------------------------------------------------
# Review of a user's history (Celery)
# ---------------------------------------------------------------------------------------
@transaction.atomic
def user_review(*, user_id: uuid.UUID, key: str) -> FraudLog | None:
    """Analyse a user's history over days; escalate them to review if it looks scripted.

    Idempotent per `key`: a second run with the same key changes nothing.
    """
    from fraud.review import history_assess

    user = User.objects.filter(pk=user_id).first()
    if user is None:
        return None
    if FraudLog.objects.filter(event_key=f"review:{user_id}:{key}").exists():
        return None
    risk = history_assess(user=user)
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
        transaction.on_commit(_queue_alerts, robust=True)
    return log


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
        _queue_review(user_id=user_id, key=f"sweep:{slot}:{user_id}")
    _queue_alerts()
    return len(users)


# ---------------------------------------------------------------------------------------
# What staff do (admin): every act is audited with the admin's name
# ---------------------------------------------------------------------------------------
def _actor(admin: User | None) -> str:
    return admin.get_username() if admin is not None else "system"


def user_set_banned(
    *,
    user: User,
    banned: bool,
    actor: str = "",
    reason: str = "",
    admin: User | None = None,
    note: str = "",
) -> bool:
    """Ban (off the board at once, writes refused, sessions ended) or unban a user.

    Returns False when the user already was in that state. Audited, with the reviewer's
    `note` when the review desk acts.
    """
    from leaderboard.services import leaderboard_user_changed

    actor = actor or _actor(admin)
    with transaction.atomic():
        changed = User.objects.filter(pk=user.pk, is_banned=not banned).update(
            is_banned=banned, banned_at=timezone.now() if banned else None
        )
        if not changed:
            return False
        if banned:
            Session.objects.filter(user=user).active().update(revoked_at=timezone.now())
            FraudLog.objects.filter(user=user, reviewed_at__isnull=True).update(
                reviewed_at=timezone.now(), reviewed_by=admin, outcome=FraudLog.Outcome.BANNED
            )
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.USER_BANNED if banned else AuditEvent.Kind.USER_UNBANNED,
            user=user,
            payload={"actor": actor, "reason": reason, "note": note},
        )
        user.refresh_from_db()
        transaction.on_commit(lambda: leaderboard_user_changed(user=user), robust=True)
        transaction.on_commit(lambda: account_state_set(user.pk, state_of(user)), robust=True)
    return True


def fraud_log_review(
    *, log: FraudLog, admin: User, outcome: str = FraudLog.Outcome.CLEARED, note: str = ""
) -> bool:
    """Mark a fraud log reviewed with its outcome. False if it already was. Audited."""
    with transaction.atomic():
        done = FraudLog.objects.filter(pk=log.pk, reviewed_at__isnull=True).update(
            reviewed_at=timezone.now(), reviewed_by=admin, outcome=outcome
        )
        if not done:
            return False
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.FLAG_REVIEWED,
            user_id=log.user_id,
            completion_id=log.completion_id,
            risk_score=log.risk_score,
            payload={"actor": _actor(admin), "fraudLog": log.pk, "outcome": outcome, "note": note},
        )
    return True


def risk_profile_clear(*, user: User, admin: User, note: str = "") -> bool:
    """Put a user back to clear: status clear, rolling risk 0, open logs cleared. Audited."""
    with transaction.atomic():
        profile, _ = RiskProfile.objects.select_for_update().get_or_create(user=user)
        was = profile.status
        profile.status, profile.rolling_risk = RiskProfile.Status.CLEAR, 0.0
        profile.save(update_fields=["status", "rolling_risk", "updated_at"])
        FraudLog.objects.filter(user=user, reviewed_at__isnull=True).update(
            reviewed_at=timezone.now(), reviewed_by=admin, outcome=FraudLog.Outcome.CLEARED
        )
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.PROFILE_CLEARED,
            user=user,
            payload={"actor": _actor(admin), "previousStatus": was, "note": note},
        )
    return was != RiskProfile.Status.CLEAR


def risk_profile_watch(*, user: User, admin: User, note: str = "") -> bool:
    """Put a user on watch (a reviewer's doubt: the desk lists them with the flagged ones;
    rolling risk and open logs unchanged). False if they already were. Audited."""
    with transaction.atomic():
        profile, _ = RiskProfile.objects.select_for_update().get_or_create(user=user)
        was = profile.status
        if was == RiskProfile.Status.WATCH:
            return False
        profile.status = RiskProfile.Status.WATCH
        profile.save(update_fields=["status", "updated_at"])
        AuditEvent.objects.create(
            kind=AuditEvent.Kind.PROFILE_WATCHED,
            user=user,
            payload={"actor": _actor(admin), "previousStatus": was, "note": note},
        )
    return True


def fraud_reverse_entry(
    *, completion_id: uuid.UUID, entry: ScoreEntry, admin: User, note: str = ""
) -> bool:
    """Take back a completion's points (its ledger `entry`) with a compensating ledger
    entry (the board updates after commit). False if it was reversed before. Audited."""
    try:
        with transaction.atomic():
            reversal = ledger_reverse(
                entry=entry, note=note or f"reversed by {_actor(admin)}"
            ).entry
            FraudLog.objects.filter(completion_id=completion_id, reviewed_at__isnull=True).update(
                reviewed_at=timezone.now(), reviewed_by=admin, outcome=FraudLog.Outcome.REVERSED
            )
            AuditEvent.objects.create(
                kind=AuditEvent.Kind.COMPLETION_REVERSED,
                user_id=entry.user_id,
                completion_id=completion_id,
                payload={
                    "actor": _actor(admin),
                    "delta": reversal.delta,
                    "scoreAfter": reversal.score_after,
                    "note": note,
                },
            )
    except AlreadyReversedError:
        return False
    return True
