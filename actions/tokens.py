"""Action tokens: signed (HMAC, key derived from SECRET_KEY and a salt), bound to the user
and the action, single-use through their nonce, and expiring."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core import signing

from actions.errors import TokenExpiredError, TokenInvalidError, TokenMismatchError

SALT = "scoreboard.actions.token"


@dataclass(frozen=True)
class ActionToken:
    user_id: uuid.UUID
    action_id: str
    nonce: str
    issued_at: datetime

    @property
    def expires_at(self) -> datetime:
        return self.issued_at + timedelta(seconds=settings.ACTION_TOKEN_TTL_SECONDS)


def action_token_issue(
    *, user_id: uuid.UUID, action_id: str, now: datetime
) -> tuple[str, ActionToken]:
    """A new signed token string and what it carries."""
    token = ActionToken(
        user_id=user_id, action_id=action_id, nonce=secrets.token_urlsafe(24), issued_at=now
    )
    payload = {
        "u": str(user_id),
        "a": action_id,
        "n": token.nonce,
        "t": round(now.timestamp(), 6),
    }
    return signing.dumps(payload, salt=SALT, compress=False), token


def action_token_verify(
    *, raw: str, user_id: uuid.UUID, action_id: str, now: datetime
) -> ActionToken:
    """Signature, expiry, then binding to this user and action; raises the specific error."""
    try:
        payload = signing.loads(raw, salt=SALT, max_age=None)
        issued_at = datetime.fromtimestamp(float(payload["t"]), tz=UTC)
        token = ActionToken(
            user_id=uuid.UUID(payload["u"]),
            action_id=str(payload["a"]),
            nonce=str(payload["n"]),
            issued_at=issued_at,
        )
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise TokenInvalidError() from exc
    if now >= token.expires_at:
        raise TokenExpiredError()
    if token.user_id != user_id or token.action_id != action_id:
        raise TokenMismatchError()
    return token


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()
