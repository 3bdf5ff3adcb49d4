"""Starting and completing actions: the only way a player's score rises."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from accounts.errors import TokenInvalidError, UserBannedError
from accounts.models import User
from actions.errors import (
    ActionInactiveError,
    ActionNotFoundError,
    CooldownActiveError,
    DailyCapReachedError,
    FraudBlockedError,
    IdempotencyInProgressError,
    IdempotencyKeyReusedError,
    TokenReplayedError,
    TooEarlyError,
)
from actions.models import ActionType, AuditBackfillCursor, Completion, IdempotencyRecord
from actions.tokens import ActionToken, action_token_issue, action_token_verify, token_hash
from core import metrics
from core.errors import ApplicationError, NotFoundError, RateLimitedError
from core.oncommit import after_commit
from core.ratelimit import RateDecision, ratelimit_hit_many
from core.redis_batch import redis_batch, redis_later
from fraud.audit import audit_record
from fraud.services import (
    RiskAssessment,
    fraud_assess,
    fraud_log_blocked,
    fraud_log_flagged,
    fraud_remember,
    fraud_reverse_entry,
    fraud_signals_prefetch,
)
from leaderboard.selectors import leaderboard_rank_of
from scoreboard.services import LedgerWrite, ledger_award, ledger_lock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CompletionOutcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class ActionGeneration:
    """The action types' generation as Redis told it (`known` False: not told)."""

    value: bytes = b""
    known: bool = False


class _ActionTypes:
    """Action types by id, kept in this process while the action types' generation in
    Redis is the one they were read at (and for at most ACTION_TYPE_CACHE_SECONDS).

    Every start and completion needs its action type; staff change them rarely, but a
    deactivation (an action being exploited) must hold at once in every process. Each
    save writes a new generation after commit (`action_types_changed`), and a completion
    reads it in the Redis round trip it makes anyway (`generation_later`), so a change is
    seen by the next completion everywhere at no extra round trip. Without a generation
    (the embedded default, where the command line is another process, or Redis failing)
    the database is read. The lifetime bounds what a lost generation write costs.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._found: dict[str, tuple[float, ActionType | None]] = {}
        self._generation: bytes | None = None

    @staticmethod
    def key() -> str:
        return f"{settings.REDIS_KEY_PREFIX}:actions:generation"

    def generation_later(self) -> ActionGeneration:
        """Queue the generation's read in the enclosing `redis_batch()` (or read it now)."""
        found = ActionGeneration()
        if settings.EMBEDDED:
            return found

        def done(outcome: list[Any] | Exception) -> None:
            if isinstance(outcome, Exception) or isinstance(outcome[0], Exception):
                metrics.backing_service_errors.labels("redis").inc()
                logger.warning("action types' generation unreadable: reading the database")
                return
            found.value = outcome[0] or b""
            found.known = True

        redis_later(lambda pipe: pipe.get(self.key()), done)
        return found

    def get(self, action_id: str, *, generation: ActionGeneration) -> ActionType | None:
        if not generation.known:
            return ActionType.objects.filter(pk=action_id).first()
        ttl = settings.ACTION_TYPE_CACHE_SECONDS
        now = time.monotonic()
        if generation.value != self._generation:
            with self._lock:
                self._found, self._generation = {}, generation.value
        hit = self._found.get(action_id)
        if hit is not None and now - hit[0] < ttl:
            return hit[1]
        action = ActionType.objects.filter(pk=action_id).first()
        if ttl > 0:
            with self._lock:
                if len(self._found) > 1000:  # bounded: ids come from clients
                    self._found.clear()
                if generation.value == self._generation:
                    self._found[action_id] = (now, action)
        return action

    def forget(self) -> None:
        with self._lock:
            self._found.clear()


action_types = _ActionTypes()


def _new_action_generation() -> None:
    def done(outcome: list[Any] | Exception) -> None:
        if isinstance(outcome, Exception) or isinstance(outcome[0], Exception):
            metrics.backing_service_errors.labels("redis").inc()
            logger.warning(
                "could not announce an action type change; other processes see it within %ss",
                settings.ACTION_TYPE_CACHE_SECONDS,
            )

    # A new random value, not a counter: a Redis restored from an older snapshot must
    # not count back to a generation some process still holds.
    redis_later(lambda pipe: pipe.set(action_types.key(), uuid.uuid4().hex), done)


def action_types_changed() -> None:
    """Tell every process, once the current transaction commits, that action types
    changed: their next start or completion reads them again. Call on every save."""
    action_types.forget()
    if not settings.EMBEDDED:
        after_commit(_new_action_generation)
    after_commit(action_types.forget)


def _active_action(action_id: str, *, generation: ActionGeneration) -> ActionType:
    action = action_types.get(action_id, generation=generation)
    if action is None:
        raise ActionNotFoundError()
    if not action.active:
        raise ActionInactiveError()
    return action


def action_start(*, user: User, action_id: str) -> tuple[str, ActionToken, ActionType]:
    """Issue a single-use action token for this user and action."""
    if user.is_banned:
        raise UserBannedError()
    action = _active_action(action_id, generation=action_types.generation_later())
    raw, token = action_token_issue(user_id=user.pk, action_id=action.pk, now=timezone.now())
    return raw, token, action


def request_fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _replay(user: User, key: str, fingerprint: str) -> CompletionOutcome | None:
    """The stored first response for this Idempotency-Key, if there is one."""
    record = IdempotencyRecord.objects.filter(user_id=user.pk, key=key).first()
    if record is None:
        return None
    expired = record.created_at < timezone.now() - timedelta(
        seconds=settings.IDEMPOTENCY_TTL_SECONDS
    )
    if expired:
        record.delete()
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReusedError()
    if record.response_status is None:
        if record.completion_id is None:
            raise IdempotencyInProgressError()
        # The completion committed but its response was never stored (the connection
        # broke after COMMIT, or the request died): it is rebuilt from the completion.
        completion = Completion.objects.select_related("score_entry").get(pk=record.completion_id)
        body = _completion_body(completion, rank=leaderboard_rank_of(user_id=user.pk))
        IdempotencyRecord.objects.filter(pk=record.pk, response_status__isnull=True).update(
            response_status=200, response_body=body
        )
        return CompletionOutcome(status=200, body=body, headers={"Idempotent-Replayed": "true"})
    return CompletionOutcome(
        status=record.response_status,
        body=record.response_body or {},
        headers={"Idempotent-Replayed": "true"},
    )


def _completion_body(completion: Completion, *, rank: int | None) -> dict[str, Any]:
    """The 200 response to an accepted completion."""
    return {
        "success": True,
        "completionId": str(completion.pk),
        "actionId": completion.action_id,
        "delta": completion.delta,
        "newScore": completion.score_entry.score_after,
        "rank": rank,
        "flagged": completion.flagged,
    }


def _rate_limit(user: User, ip: str | None) -> list[RateDecision]:
    """The per-user and per-IP completion limits, counted in one Redis round trip (or
    the enclosing `redis_batch()`'s: then the list is filled when it ends)."""
    return ratelimit_hit_many(
        [
            ("complete-user", str(user.pk), settings.COMPLETION_RATE_PER_USER),
            ("complete-ip", ip or "unknown", settings.COMPLETION_RATE_PER_IP),
        ]
    )


def _over_limit(decisions: list[RateDecision]) -> dict[str, str]:
    """Raise 429 if a limit is exceeded; otherwise the per-user limit's headers (the
    first of `_rate_limit`'s)."""
    for decision in decisions:
        if decision.limited:
            raise RateLimitedError(
                "Too many completions; slow down.",
                retry_after=decision.reset_seconds,
                headers=decision.headers(),
            )
    return decisions[0].headers()  # the per-user limit's


def _check_rules(*, user: User, action: ActionType, now: datetime) -> None:
    """Cooldown and daily cap. Precondition: the user's row is locked.

    A replayed token needs no query here: the completion's unique nonce refuses it at
    insert, which aborts the whole transaction.
    """
    if action.cooldown_seconds:
        last = (
            Completion.objects.filter(user_id=user.pk, action=action)
            .order_by("-created_at")
            .values_list("created_at", flat=True)
            .first()
        )
        if last is not None and now < last + timedelta(seconds=action.cooldown_seconds):
            wait = (last + timedelta(seconds=action.cooldown_seconds) - now).total_seconds()
            raise CooldownActiveError(details={"retryAfter": max(1, int(wait + 0.999))})
    if action.daily_cap is not None:
        day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
        done_today = Completion.objects.filter(
            user_id=user.pk, action=action, created_at__gte=day_start
        ).count()
        if done_today >= action.daily_cap:
            raise DailyCapReachedError(details={"dailyCap": action.daily_cap})


@dataclass(frozen=True)
class CompletionRequest:
    """What a client sent to complete an action, and who and where it came from."""

    user: User
    action_id: str
    raw_token: str
    client_timestamp: datetime | None
    ip: str | None
    user_agent: str
    idempotency_key: str | None = None
    fingerprint: str = ""


def completion_submit(*, request: CompletionRequest) -> CompletionOutcome:
    """Check a completion and, if every check passes, award its reward in one transaction.

    Checks run cheapest first; the transaction locks the user's row, so a user's
    completions are serialised and cooldown, daily cap and replay hold under races.
    """
    key = request.idempotency_key
    if key:
        replayed = _replay(request.user, key, request.fingerprint)
        if replayed is not None:
            return replayed
    try:
        return _submit(request)
    except ApplicationError:
        # A twin request with the same key may have won while this one ran its checks:
        # then its stored response (or "in progress") is the answer, not this refusal.
        if key:
            replayed = _replay(request.user, key, request.fingerprint)
            if replayed is not None:
                return replayed
        raise


def _submit(request: CompletionRequest) -> CompletionOutcome:
    user, ip, user_agent = request.user, request.ip, request.user_agent
    if user.is_banned:
        raise UserBannedError()
    now = timezone.now()
    # The rate limits and the fraud rules' signals: one Redis round trip, as the block
    # ends. The limits are checked first; the signals are read even when a later check
    # refuses the completion (counting the account on its address, as an attempt).
    with redis_batch():
        limits = _rate_limit(user, ip)
        signals = fraud_signals_prefetch(user_id=user.pk, ip=ip, now=now)
        generation = action_types.generation_later()
    rate_headers = _over_limit(limits)
    action = _active_action(request.action_id, generation=generation)
    token = action_token_verify(
        raw=request.raw_token, user_id=user.pk, action_id=action.pk, now=now
    )
    earliest = token.issued_at + timedelta(seconds=action.min_duration_seconds)
    if now < earliest:
        raise TooEarlyError(details={"earliestCompletionAt": earliest.isoformat()})

    risk = fraud_assess(
        user=user,
        action_id=action.pk,
        reward=action.reward,
        cooldown_seconds=action.cooldown_seconds,
        min_duration_seconds=action.min_duration_seconds,
        ip=ip,
        user_agent=user_agent,
        now=now,
        prefetched=signals,
    )
    if risk.blocked:
        _refuse(request, action=action, token=token, risk=risk, now=now)

    # The after-commit Redis work of the leaderboard, the audit outbox and the fraud
    # rules' memory: one round trip, sent as the block ends.
    with redis_batch():
        try:
            completion, write = _accept(request, action=action, token=token, risk=risk)
        except _IdempotencyRaceError:
            replayed = _replay(user, request.idempotency_key or "", request.fingerprint)
            if replayed is None:
                raise IdempotencyInProgressError() from None
            return replayed
        except IntegrityError as exc:  # the nonce's unique key: the last line against replays
            raise TokenReplayedError() from exc
        except DatabaseError:
            # The connection may break after COMMIT went through (a lost acknowledgement,
            # or the connection reset as the transaction ended): if the completion is
            # stored, it was accepted, and the client must hear so. Otherwise the error
            # (503) stands.
            stored, write = _stored(user, token.nonce), None
            if stored is None:
                raise
            completion = stored
        fraud_remember(
            user_id=user.pk,
            action_id=action.pk,
            delta=action.reward,
            risk=risk,
            at=now,
            score=completion.score_entry.score_after,
        )
    if risk.flagged:
        metrics.fraud_decisions.labels("flag").inc()
    body = _completion_body(completion, rank=_rank_after(write, user))
    if request.idempotency_key:
        try:
            IdempotencyRecord.objects.filter(user_id=user.pk, key=request.idempotency_key).update(
                response_status=200, response_body=body
            )
        except DatabaseError:
            # The completion is committed: the client hears so. A retry rebuilds this
            # response from the completion the key names.
            logger.warning("could not store the response of completion %s", completion.pk)
    return CompletionOutcome(status=200, body=body, headers=rate_headers)


def _refuse(
    request: CompletionRequest,
    *,
    action: ActionType,
    token: ActionToken,
    risk: RiskAssessment,
    now: datetime,
) -> NoReturn:
    """Refuse a completion the fraud rules block: logged, audited, nothing on the ledger."""
    user, ip, user_agent = request.user, request.ip, request.user_agent
    metrics.fraud_decisions.labels("block").inc()
    details = {"actionId": action.pk, "nonce": token.nonce, "ip": ip, "userAgent": user_agent}
    with redis_batch():  # the fraud rules' memory and the audit outbox: one round trip
        fraud_remember(user_id=user.pk, action_id=action.pk, delta=0, risk=risk, at=now)
        audit_record(
            kind="completion.blocked",
            user_id=str(user.pk),
            completion_id=None,
            risk_score=risk.score,
            payload={**details, **risk.as_details()},
            event_key=f"completion.blocked:{token.nonce}",
        )
    fraud_log_blocked(
        user_id=user.pk,
        nonce=token.nonce,
        risk=risk,
        ip=ip,
        user_agent=user_agent,
        details={"actionId": action.pk},
    )
    raise FraudBlockedError(details={"reasons": risk.public_reasons()})


def _rank_after(write: LedgerWrite | None, user: User) -> int | None:
    """The rank the board gave the completion after commit, or a fresh read of it (the
    board was not told: it failed, or the commit's outcome had to be read back)."""
    if write is not None and write.ranked:
        return write.rank
    return leaderboard_rank_of(user_id=user.pk)


def _stored(user: User, nonce: str) -> Completion | None:
    """The committed completion of this nonce, if the database can say so now."""
    try:
        return (
            Completion.objects.select_related("score_entry")
            .filter(user_id=user.pk, nonce=nonce)
            .first()
        )
    except DatabaseError:
        return None


class _IdempotencyRaceError(Exception):
    """Another request with the same Idempotency-Key committed first."""


@transaction.atomic
def _accept(
    request: CompletionRequest, *, action: ActionType, token: ActionToken, risk: RiskAssessment
) -> tuple[Completion, LedgerWrite]:
    """The completion's one transaction: claim, lock, check, award, record."""
    user, ip, user_agent = request.user, request.ip, request.user_agent
    # The key is claimed first (a twin request waits on it, then replays) and names the
    # completion this transaction stores, so a retry learns the outcome even if the
    # response is never stored.
    completion_id = uuid.uuid4()
    if request.idempotency_key:
        try:
            with transaction.atomic():
                IdempotencyRecord.objects.create(
                    user_id=user.pk,
                    key=request.idempotency_key,
                    request_hash=request.fingerprint,
                    completion_id=completion_id,
                )
        except IntegrityError as exc:
            raise _IdempotencyRaceError() from exc
    # Lock the user's row, adding the reward to their total in the same statement:
    # concurrent completions of one user wait here, so the cooldown and daily-cap checks
    # below see every earlier completion, and a ban that committed since the request was
    # authenticated is seen too. A check that refuses rolls the addition back.
    try:
        row = ledger_lock(user_id=user.pk, add=action.reward)
    except NotFoundError as exc:
        raise TokenInvalidError("The token's user no longer exists or is inactive.") from exc
    if row.is_banned:
        raise UserBannedError()
    if not row.is_active:
        raise TokenInvalidError("The token's user no longer exists or is inactive.")
    now = row.user.at or timezone.now()
    _check_rules(user=user, action=action, now=now)
    write = ledger_award(
        user_id=user.pk,
        locked=row.user,
        delta=action.reward,
        action_id=action.pk,
        token_hash=token_hash(request.raw_token),
        ip=ip,
        user_agent=user_agent,
    )
    # The nonce's unique key backs up the check above; a violation aborts the whole
    # transaction and becomes token_replayed in completion_submit.
    completion = Completion.objects.create(
        id=completion_id,
        user_id=user.pk,
        action=action,
        nonce=token.nonce,
        score_entry=write.entry,
        delta=action.reward,
        started_at=token.issued_at,
        client_timestamp=request.client_timestamp,
        risk_score=risk.score,
        flagged=risk.flagged,
        ip=ip,
        user_agent=user_agent[:512],
        created_at=now,
    )
    if risk.flagged:
        fraud_log_flagged(
            user_id=user.pk,
            completion_id=completion.pk,
            risk=risk,
            ip=ip,
            user_agent=user_agent,
            details={"actionId": action.pk, "delta": action.reward},
        )
    after_commit(
        audit_record,
        kind="completion.accepted",
        user_id=str(user.pk),
        completion_id=str(completion.pk),
        risk_score=risk.score,
        payload={
            "actionId": action.pk,
            "delta": action.reward,
            "flagged": risk.flagged,
            "ip": ip,
            "userAgent": user_agent,
            **risk.as_details(),
        },
        event_key=f"completion.accepted:{completion.pk}",
    )
    return completion, write


_BACKFILL_CURSOR = "completion.accepted"


def completion_audit_backfill(
    *,
    older_than_seconds: float | None = None,
    batch: int | None = None,
    budget_seconds: float | None = None,
    on_more: Callable[[], None] | None = None,
) -> int:
    """Write the accepted-audit record of every completion that has none; the number
    written.

    The record is queued after commit; when the broker is down, or loses its queue (a
    Redis restarted without persistence), it is never written. The completion row holds
    what the record needs. Idempotent: the record's unique `event_key` is the task's own,
    so a late delivery of the original task (or a second backfill) writes nothing more.

    Scans the completions older than AUDIT_BACKFILL_AGE_SECONDS (the outbox's own drain
    writes theirs first) from a durable cursor, less AUDIT_BACKFILL_OVERLAP_SECONDS for
    transactions that committed late, in batches of AUDIT_BACKFILL_BATCH, for at most
    AUDIT_BACKFILL_RUN_SECONDS; `on_more` is called if it stopped with more to write.
    The cursor moves only past completions that all have their record.
    """
    from fraud.models import AuditEvent

    age = settings.AUDIT_BACKFILL_AGE_SECONDS if older_than_seconds is None else older_than_seconds
    size = batch or settings.AUDIT_BACKFILL_BATCH
    budget = settings.AUDIT_BACKFILL_RUN_SECONDS if budget_seconds is None else budget_seconds
    began = time.monotonic()
    now = timezone.now()
    upto = now - timedelta(seconds=age)
    cursor = AuditBackfillCursor.objects.filter(name=_BACKFILL_CURSOR).first()
    since = (
        cursor.position - timedelta(seconds=settings.AUDIT_BACKFILL_OVERLAP_SECONDS)
        if cursor is not None
        else now - timedelta(days=settings.AUDIT_BACKFILL_FIRST_DAYS)
    )
    written = 0
    while True:
        # NOT EXISTS on the audit trail's completion index, along the completions'
        # created_at index: each batch starts at the oldest completion still missing.
        missing = list(
            Completion.objects.filter(created_at__gte=since, created_at__lt=upto)
            .exclude(
                Exists(
                    AuditEvent.objects.filter(
                        completion_id=OuterRef("pk"), kind=AuditEvent.Kind.COMPLETION_ACCEPTED
                    )
                )
            )
            .order_by("created_at")[:size]
        )
        if missing:
            written += _backfill_write(missing)
            since = missing[-1].created_at
        if len(missing) < size:
            _backfill_cursor_advance(upto)
            break
        _backfill_cursor_advance(since)
        if time.monotonic() - began >= budget:
            if on_more is not None:
                on_more()
            break
    if written:
        logger.warning("wrote %d missing completion audit records", written)
    return written


def _backfill_write(completions: list[Completion]) -> int:
    from fraud.models import AuditEvent

    records = [
        AuditEvent(
            kind=AuditEvent.Kind.COMPLETION_ACCEPTED,
            user_id=c.user_id,
            completion_id=c.pk,
            risk_score=c.risk_score,
            payload={
                "actionId": c.action_id,
                "delta": c.delta,
                "flagged": c.flagged,
                "ip": c.ip,
                "userAgent": c.user_agent,
                "backfilled": True,
            },
            event_key=f"completion.accepted:{c.pk}",
        )
        for c in completions
    ]
    return len(AuditEvent.objects.bulk_create(records, ignore_conflicts=True))


def _backfill_cursor_advance(position: datetime) -> None:
    """Move the cursor forward to `position` (never back: runs may overlap)."""
    moved = AuditBackfillCursor.objects.filter(name=_BACKFILL_CURSOR, position__lt=position).update(
        position=position
    )
    if not moved:
        AuditBackfillCursor.objects.get_or_create(
            name=_BACKFILL_CURSOR, defaults={"position": position}
        )


def idempotency_expire() -> int:
    """Delete Idempotency-Key records older than their time to live."""
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def action_type_save(
    *,
    action_id: str,
    name: str,
    reward: int,
    cooldown_seconds: int = 0,
    min_duration_seconds: int = 0,
    daily_cap: int | None = None,
    active: bool = True,
) -> tuple[ActionType, bool]:
    """Create or update an action type after full validation."""
    action = ActionType.objects.filter(pk=action_id).first() or ActionType(id=action_id)
    created = action._state.adding
    action.name, action.reward = name, reward
    action.cooldown_seconds, action.min_duration_seconds = cooldown_seconds, min_duration_seconds
    action.daily_cap, action.active = daily_cap, active
    action.full_clean()
    action.save()
    action_types_changed()
    return action, created


def completion_reverse(*, completion: Completion, admin: User, note: str = "") -> bool:
    """Take back a completion's points (a compensating ledger entry; the board updates
    after commit), closing its fraud logs as reversed. False if it was reversed before.
    Audited with the admin's name."""
    return fraud_reverse_entry(
        completion_id=completion.pk, entry=completion.score_entry, admin=admin, note=note
    )
