"""Action types: kept per process, changed by staff, and a change seen at once everywhere."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from actions.errors import ActionInactiveError, ActionNotFoundError
from actions.models import ActionType
from core import metrics
from core.oncommit import after_commit
from core.redis_batch import redis_later

logger = logging.getLogger(__name__)


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


def action_type_active(action_id: str, *, generation: ActionGeneration) -> ActionType:
    action = action_types.get(action_id, generation=generation)
    if action is None:
        raise ActionNotFoundError()
    if not action.active:
        raise ActionInactiveError()
    return action


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
