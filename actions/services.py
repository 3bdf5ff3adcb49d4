"""Starting and completing actions: the only way a player's score rises."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from django.conf import settings
from django.db import DatabaseError, IntegrityError, transaction
from django.utils import timezone

from accounts.errors import TokenInvalidError, UserBannedError
from accounts.models import User
from actions.action_types import action_type_active, action_types
from actions.errors import (
    CooldownActiveError,
    DailyCapReachedError,
    FraudBlockedError,
    IdempotencyInProgressError,
    TokenReplayedError,
    TooEarlyError,
)
from actions.idempotency import (
    CompletionOutcome,
    IdempotencyRaceError,
    completion_body,
    idempotency_claim,
    idempotency_replay,
    idempotency_response_store,
)
from actions.models import ActionType, Completion
from actions.tokens import ActionToken, action_token_issue, action_token_verify, token_hash
from core import metrics
from core.errors import ApplicationError, NotFoundError, RateLimitedError
from core.oncommit import after_commit
from core.ratelimit import RateDecision, ratelimit_hit_many
from core.redis_batch import redis_batch
from fraud.assess import (
    RiskAssessment,
    fraud_assess,
    fraud_log_blocked,
    fraud_log_flagged,
    fraud_remember,
    fraud_signals_prefetch,
)
from fraud.audit import audit_record
from fraud.services import fraud_reverse_entry
from leaderboard.period_reads import entry_boards
from leaderboard.selectors import leaderboard_rank_of
from scoreboard.services import LedgerWrite, ledger_award, ledger_lock

logger = logging.getLogger(__name__)


def action_start(*, user: User, action_id: str) -> tuple[str, ActionToken, ActionType]:
    """Issue a single-use action token for this user and action."""
    if user.is_banned:
        raise UserBannedError()
    action = action_type_active(action_id, generation=action_types.generation_later())
    raw, token = action_token_issue(user_id=user.pk, action_id=action.pk, now=timezone.now())
    return raw, token, action


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
        replayed = idempotency_replay(request.user, key, request.fingerprint)
        if replayed is not None:
            return replayed
    try:
        return _submit(request)
    except ApplicationError:
        # A twin request with the same key may have won while this one ran its checks:
        # then its stored response (or "in progress") is the answer, not this refusal.
        if key:
            replayed = idempotency_replay(request.user, key, request.fingerprint)
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
    action = action_type_active(request.action_id, generation=generation)
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
        except IdempotencyRaceError:
            replayed = idempotency_replay(user, request.idempotency_key or "", request.fingerprint)
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
    body = completion_body(
        completion, rank=_rank_after(write, user), boards=_boards_after(write, completion)
    )
    if request.idempotency_key:
        try:
            idempotency_response_store(user_id=user.pk, key=request.idempotency_key, body=body)
        except DatabaseError:
            # The completion is committed: the client hears so. A retry rebuilds this
            # response from the completion the key names.
            logger.warning("could not store the response of completion %s", completion.pk)
    return CompletionOutcome(status=200, body=body, headers=rate_headers)


def _pace(action: ActionType) -> dict[str, int]:
    """The pace the action allows a person, kept with a fraud log for the reviewer."""
    return {
        "cooldownSeconds": action.cooldown_seconds,
        "minDurationSeconds": action.min_duration_seconds,
    }


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
        details={"actionId": action.pk, **_pace(action)},
    )
    raise FraudBlockedError(details={"reasons": risk.public_reasons()})


def _rank_after(write: LedgerWrite | None, user: User) -> int | None:
    """The rank the board gave the completion after commit, or a fresh read of it (the
    board was not told: it failed, or the commit's outcome had to be read back)."""
    if write is not None and write.ranked:
        return write.rank
    return leaderboard_rank_of(user_id=user.pk)


def _boards_after(write: LedgerWrite | None, completion: Completion) -> list[Any]:
    """The boards the completion counted on, as the after-commit round trip answered, or
    read afresh (no board answered: Redis failed, or the commit's outcome was read back)."""
    if write is not None and "boards" in write.answers:
        return list(write.answers["boards"])
    if write is not None and not write.extras.get("boards"):
        return []
    return entry_boards(entry_id=completion.score_entry_id, user_id=completion.user_id)


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
        idempotency_claim(
            user_id=user.pk,
            key=request.idempotency_key,
            fingerprint=request.fingerprint,
            completion_id=completion_id,
        )
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
            details={
                "actionId": action.pk,
                "delta": action.reward,
                # The desk's link from this log to the ledger entry it may reverse.
                "entryId": write.entry.pk,
                **_pace(action),
            },
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
            "entryId": write.entry.pk,
            "flagged": risk.flagged,
            "ip": ip,
            "userAgent": user_agent,
            **risk.as_details(),
        },
        event_key=f"completion.accepted:{completion.pk}",
    )
    return completion, write


def completion_reverse(*, completion: Completion, admin: User, note: str = "") -> bool:
    """Take back a completion's points (a compensating ledger entry; the board updates
    after commit), closing its fraud logs as reversed. False if it was reversed before.
    Audited with the admin's name."""
    return fraud_reverse_entry(
        completion_id=completion.pk, entry=completion.score_entry, admin=admin, note=note
    )
