"""Fraud on the completion path: each completion's risk from the named rules, the
signals they read, the decisions recorded (fraud logs, risk profiles), and the reviews
and alerts they ask for.

`fraud_assess` runs on the completion path before its transaction: no SQL, one Redis round
trip to read the signals; `fraud_remember` adds its writes to the completion's
after-commit round trip (`core.redis_batch`). Everything that needs the database (fraud
logs, risk profiles) happens in the completion's own transaction; reviews and alerts in
Celery tasks, queued by name.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction

from accounts.models import User
from core import metrics
from core.enqueue import task_enqueue
from core.oncommit import after_commit
from core.redis_batch import redis_later
from fraud.geo import Place, place_of
from fraud.models import FraudLog, RiskProfile
from fraud.rules import RULES, PastCompletion, Signals, combine
from fraud.signals import RedisSignalStore, device_of, ip_prefix, signal_store

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


def _decision_record(log: FraudLog, *, risk: float, blocked: bool) -> datetime | None:
    """Insert `log` and count it on its user's risk profile (made on first use: rolling
    risk, the flag or block counted, last flagged now, clear becomes watch), in one
    statement on PostgreSQL. Returns when the profile was last flagged before this one.

    The statement's parts see one snapshot, so `prev` reads the profile as it was before
    the upsert; the completion holds its user's row lock, so flags of one user are counted
    one at a time. SQLite (the embedded default, one writer at a time) runs the same parts
    as three statements.
    """
    log_meta, profile = FraudLog._meta, RiskProfile._meta
    fields = [f for f in log_meta.local_concrete_fields if not f.primary_key]
    for f in fields:
        f.pre_save(log, add=True)  # created_at, as save() would set it
    values = [f.get_db_prep_save(getattr(log, f.attname), connection) for f in fields]
    columns = ", ".join(connection.ops.quote_name(f.column or f.attname) for f in fields)
    table = profile.db_table
    at = log.created_at
    user_id = profile.pk.get_db_prep_value(log.user_id, connection)
    stamp = profile.get_field("last_flagged_at").get_db_prep_value(at, connection)
    keep = 1 - ROLLING_WEIGHT
    watch, clear = RiskProfile.Status.WATCH, RiskProfile.Status.CLEAR
    upsert = (
        f"INSERT INTO {table} (user_id, status, rolling_risk, flags_count, blocks_count,"
        f" last_flagged_at, updated_at) {{source}}"
        f" ON CONFLICT (user_id) DO UPDATE SET"
        f" rolling_risk = {table}.rolling_risk * {keep} + excluded.rolling_risk,"
        f" flags_count = {table}.flags_count + excluded.flags_count,"
        f" blocks_count = {table}.blocks_count + excluded.blocks_count,"
        f" last_flagged_at = excluded.last_flagged_at, updated_at = excluded.updated_at,"
        f" status = CASE WHEN {table}.status = '{clear}' THEN '{watch}' ELSE {table}.status END"
    )
    counted = [
        user_id,
        watch,
        risk * ROLLING_WEIGHT,
        0 if blocked else 1,
        1 if blocked else 0,
        stamp,
        stamp,
    ]
    insert = (
        f"INSERT INTO {log_meta.db_table} ({columns})"  # noqa: S608
        f" VALUES ({', '.join(['%s'] * len(fields))}) RETURNING id"
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                f"WITH prev AS (SELECT last_flagged_at FROM {table} WHERE user_id = %s), "  # noqa: S608
                f"log AS ({insert}) "
                + upsert.format(source="SELECT %s, %s, %s, %s, %s, %s, %s FROM log")
                + " RETURNING (SELECT id FROM log), (SELECT last_flagged_at FROM prev)",
                [user_id, *values, *counted],
            )
            log.pk, before = cursor.fetchone()
            log._state.adding, log._state.db = False, connection.alias
            return before
    before = (
        RiskProfile.objects.filter(user_id=log.user_id)
        .values_list("last_flagged_at", flat=True)
        .first()
    )
    with connection.cursor() as cursor:
        cursor.execute(insert, values)
        log.pk = cursor.fetchone()[0]
        cursor.execute(upsert.format(source="VALUES (%s, %s, %s, %s, %s, %s, %s)"), counted)
    log._state.adding, log._state.db = False, connection.alias
    return before


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
    """A flagged or blocked completion's log and profile, in the caller's transaction.
    After commit, the first flag or block of the user's review window asks for the
    batch of due reviews (`reviews_due_queue`); a later one in the window would find
    the same review."""
    log = FraudLog(
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
    before = _decision_record(log, risk=risk.score, blocked=event == FraudLog.Event.BLOCKED)
    if before is None or review_window(before) != review_window(log.created_at):
        after_commit(reviews_due_queue, at=log.created_at)
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
    count it on the profile, and ask for its user's review and the security team's alert
    (batched: `_queue_batch`). Nothing reaches the ledger."""
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
    after_commit(alerts_due_queue, at=log.created_at)
    return log


def review_window(at: datetime) -> int:
    """The review window (FRAUD_REVIEW_WINDOW_SECONDS) `at` falls in: a flagged user is
    reviewed once a window."""
    return int(at.timestamp() // settings.FRAUD_REVIEW_WINDOW_SECONDS)


# The slot of FRAUD_REVIEW_BATCH_SECONDS in which this process last asked for each batch
# task: a process asks at most once a slot.
_batch_asked: dict[str, int] = {}


def _queue_batch(name: str, *, at: datetime) -> None:
    """Ask for task `name` to run when the current slot of FRAUD_REVIEW_BATCH_SECONDS
    ends, unless this process asked for it in this slot already. The task then handles
    everything the slot brought, committed by then; what commits as it runs is found by
    the next slot's run or the task's beat (the sweep, the alerts' half window)."""
    if settings.CELERY_TASK_ALWAYS_EAGER:  # it runs now: every caller asks
        _queue(name)
        return
    every = settings.FRAUD_REVIEW_BATCH_SECONDS
    slot = int(at.timestamp() // every)
    if _batch_asked.get(name) == slot:
        return
    _batch_asked[name] = slot
    _queue(name, countdown=max(0.0, (slot + 1) * every - time.time()))


def reviews_due_queue(*, at: datetime) -> None:
    """Ask for the reviews of every user flagged since their last one (`fraud.reviews_due`):
    one task a slot and process reviews all the users a burst of flags brings, each
    within a slot of their first flag."""
    _queue_batch("fraud.reviews_due", at=at)


def alerts_due_queue(*, at: datetime) -> None:
    """Ask for the security team's summary of new blocks (`fraud.alerts_send`), once a
    slot and process however many blocks the slot brings."""
    _queue_batch("fraud.alerts_send", at=at)


def _queue(name: str, *, countdown: float | None = None, **kwargs: Any) -> None:
    try:
        task_enqueue(name, countdown=countdown, **kwargs)
    except Exception:  # the broker is down: the sweep catches up with reviews and alerts
        metrics.backing_service_errors.labels("celery").inc()
        logger.exception("could not queue %s", name)


def review_queue(*, user_id: uuid.UUID, key: str) -> None:
    _queue("fraud.user_review", user_id=str(user_id), key=key)


def alerts_queue() -> None:
    _queue("fraud.alerts_send")
