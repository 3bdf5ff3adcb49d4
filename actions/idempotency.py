"""Idempotency-Key: a retried completion gets the first one's outcome and changes nothing.

The key is claimed in the completion's own transaction and names the completion it
stores (`idempotency_claim`), so a retry learns the real outcome even when the first
response was never stored: it is rebuilt from the completion row.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from actions.errors import IdempotencyInProgressError, IdempotencyKeyReusedError
from actions.models import Completion, IdempotencyRecord
from leaderboard.period_reads import entry_boards
from leaderboard.selectors import leaderboard_rank_of


@dataclass(frozen=True)
class CompletionOutcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def request_fingerprint(body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def idempotency_replay(user: User, key: str, fingerprint: str) -> CompletionOutcome | None:
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
        body = completion_body(
            completion,
            rank=leaderboard_rank_of(user_id=user.pk),
            boards=entry_boards(entry_id=completion.score_entry_id, user_id=user.pk),
        )
        IdempotencyRecord.objects.filter(pk=record.pk, response_status__isnull=True).update(
            response_status=200, response_body=body
        )
        return CompletionOutcome(status=200, body=body, headers={"Idempotent-Replayed": "true"})
    return CompletionOutcome(
        status=record.response_status,
        body=record.response_body or {},
        headers={"Idempotent-Replayed": "true"},
    )


def completion_body(
    completion: Completion, *, rank: int | None, boards: list[Any]
) -> dict[str, Any]:
    """The 200 response to an accepted completion (`boards`: each board it counted on,
    with the user's score and rank there)."""
    return {
        "success": True,
        "completionId": str(completion.pk),
        "actionId": completion.action_id,
        "delta": completion.delta,
        "newScore": completion.score_entry.score_after,
        "rank": rank,
        "flagged": completion.flagged,
        "boards": boards,
    }


class IdempotencyRaceError(Exception):
    """Another request with the same Idempotency-Key committed first."""


def idempotency_claim(
    *, user_id: uuid.UUID, key: str, fingerprint: str, completion_id: uuid.UUID
) -> None:
    """Claim `key` for the completion `completion_id`, in the caller's transaction (a
    savepoint of its own). Raises IdempotencyRaceError if a twin request claimed it."""
    try:
        with transaction.atomic():
            IdempotencyRecord.objects.create(
                user_id=user_id, key=key, request_hash=fingerprint, completion_id=completion_id
            )
    except IntegrityError as exc:
        raise IdempotencyRaceError() from exc


def idempotency_response_store(*, user_id: uuid.UUID, key: str, body: dict[str, Any]) -> None:
    """Store the first response of `key` (after the completion committed)."""
    IdempotencyRecord.objects.filter(user_id=user_id, key=key).update(
        response_status=200, response_body=body
    )


def idempotency_expire() -> int:
    """Delete Idempotency-Key records older than their time to live."""
    cutoff = timezone.now() - timedelta(seconds=settings.IDEMPOTENCY_TTL_SECONDS)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
