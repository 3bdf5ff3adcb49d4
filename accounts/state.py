"""Which accounts may not act, kept in Redis so that authentication needs no SQL query.

An access token names its user; whether that user was banned, deactivated or deleted
since the token was issued is the one thing authentication must still look up. This
module answers it in one Redis round trip (`account_state`), or as one command of the
caller's (`account_state_ahead`):

  <REDIS_KEY_PREFIX>:acct:blocked   hash   user id -> "banned" | "inactive"
  <REDIS_KEY_PREFIX>:acct:deleted   zset   user id -> when the account was deleted
  <REDIS_KEY_PREFIX>:acct:ready     string present while the hash is complete

The hash is derived from PostgreSQL (users with `is_banned` or not `is_active`) and is
rebuilt from it whenever `ready` is missing: on first use, after Redis lost its data,
and every ACCOUNT_STATE_REFRESH_SECONDS (the bound on drift if a write below failed).
Every change of those two fields is written here after its transaction commits
(accounts.signals and the ban service), so a ban takes effect on the next request.
Deleted accounts are kept in the sorted set for one access-token lifetime, after which
their tokens have expired anyway.

When the answer is unknown (the embedded default without Redis, Redis down, the hash
not ready) the caller reads the user's row instead, as it did before.
"""

from __future__ import annotations

import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db.models import Q

from core import metrics
from core.redis_batch import redis_later
from core.redis_client import redis_strict
from core.redis_scripts import redis_script, script_queue

logger = logging.getLogger(__name__)

BANNED = "banned"
INACTIVE = "inactive"
DELETED = "deleted"

# KEYS: ready, blocked, deleted. ARGV: user id. Returns nil when the hash is not ready,
# otherwise the account's state ("" when it may act).
_LOOKUP = """
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local state = redis.call('HGET', KEYS[2], ARGV[1])
if state then return state end
if redis.call('ZSCORE', KEYS[3], ARGV[1]) then return 'deleted' end
return ''
"""


def _keys() -> dict[str, str]:
    base = f"{settings.REDIS_KEY_PREFIX}:acct"
    return {name: f"{base}:{name}" for name in ("ready", "blocked", "deleted", "rebuild")}


def _client() -> Any:
    return redis_strict()


def state_of(user: Any) -> str:
    """The state an account row gives: "" (may act), "banned" or "inactive"."""
    if not user.is_active:
        return INACTIVE
    return BANNED if user.is_banned else ""


def account_state(user_id: uuid.UUID | str) -> str | None:
    """ "" when the account may act, "banned", "inactive" or "deleted"; None when unknown
    (the caller then reads the database). One Redis round trip."""
    if settings.EMBEDDED:
        return None
    keys = _keys()
    try:
        client = _client()
        found = redis_script(client, _LOOKUP)(
            keys=[keys["ready"], keys["blocked"], keys["deleted"]], args=[str(user_id)]
        )
    except Exception:
        _unavailable()
        return None
    return _state_of(found)


@dataclass
class StateAhead:
    """An account's state read ahead, in the caller's Redis round trip."""

    user_id: str
    found: str | None = None  # as `account_state` answers, once `heard`
    heard: bool = False


def account_state_ahead(user_id: uuid.UUID | str) -> StateAhead:
    """Queue `account_state`'s lookup in the enclosing `redis_batch()`, so that it shares
    the round trip of the commands queued with it; its answer is in `found` once the
    block has ended (`heard`). Outside a block it is read now."""
    ahead = StateAhead(user_id=str(user_id))
    if settings.EMBEDDED:
        ahead.heard = True
        return ahead
    named = _keys()
    keys = [named["ready"], named["blocked"], named["deleted"]]
    reply_of: list[Callable[[Any], Any]] = []

    def queue(pipe: Any) -> None:
        script = redis_script(_client(), _LOOKUP)
        reply_of.append(script_queue(pipe, script, keys, [ahead.user_id]))

    def done(replies: list[Any] | Exception) -> None:
        ahead.heard = True
        try:
            if isinstance(replies, Exception):
                raise replies
            reply = reply_of[0](replies[0])
        except Exception:
            _unavailable()  # `found` stays None: the row is read
            return
        ahead.found = _state_of(reply)

    redis_later(queue, done)
    return ahead


def _unavailable() -> None:
    metrics.backing_service_errors.labels("redis").inc()
    logger.warning("account state unavailable; reading the user row instead")


def _state_of(found: Any) -> str | None:
    if found is None:
        account_state_rebuild()
        return None
    return found.decode() if isinstance(found, bytes) else str(found)


def account_state_set(user_id: uuid.UUID | str, state: str) -> None:
    """Record a committed change of an account's state (call after commit)."""
    if settings.EMBEDDED:
        return
    keys = _keys()
    try:
        pipe = _client().pipeline(transaction=False)
        if state == DELETED:
            pipe.hdel(keys["blocked"], str(user_id))
            pipe.zadd(keys["deleted"], {str(user_id): time.time()})
            lifetime = settings.SIMPLE_JWT["ACCESS_TOKEN_LIFETIME"].total_seconds()
            pipe.zremrangebyscore(keys["deleted"], "-inf", time.time() - lifetime - 60)
        elif state:
            pipe.hset(keys["blocked"], str(user_id), state)
        else:
            pipe.hdel(keys["blocked"], str(user_id))
        pipe.execute()
    except Exception:
        # The hash is rebuilt from the database at the latest when `ready` expires.
        metrics.backing_service_errors.labels("redis").inc()
        logger.exception("could not record account %s as %r", user_id, state or "clear")


def account_state_rebuild() -> bool:
    """Rebuild the hash from the database, once across processes. True if this call did."""
    from accounts.models import User

    keys = _keys()
    client = _client()
    token = secrets.token_hex(8)
    if not client.set(keys["rebuild"], token, nx=True, px=10_000):
        return False
    try:
        rows = User.objects.filter(Q(is_banned=True) | Q(is_active=False))
        blocked = {
            str(pk): INACTIVE if not active else BANNED
            for pk, active in rows.values_list("pk", "is_active").iterator(chunk_size=5000)
        }
        pipe = client.pipeline(transaction=True)
        pipe.delete(keys["blocked"])
        items = list(blocked.items())
        for start in range(0, len(items), 1000):
            pipe.hset(keys["blocked"], mapping=dict(items[start : start + 1000]))
        pipe.set(keys["ready"], "1", ex=settings.ACCOUNT_STATE_REFRESH_SECONDS)
        pipe.execute()
        return True
    except Exception:
        metrics.backing_service_errors.labels("redis").inc()
        logger.exception("could not rebuild the account state")
        return False
    finally:
        try:
            if client.get(keys["rebuild"]) == token.encode():
                client.delete(keys["rebuild"])
        except Exception:
            logger.debug("could not release the account-state rebuild lock", exc_info=True)
