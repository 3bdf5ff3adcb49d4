"""The board's bus: the Redis keys and channels that the writers and the broadcasters
share, the wake-up after a change and the viewer's own `me.update`. Writers (the
leaderboard's services, the rebuild) use this module; the broadcaster (leaderboard/
broadcast.py) reads it and registers its embedded-mode wake-up here."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from django.conf import settings

from core import metrics
from core.redis_client import redis_strict
from leaderboard import events

logger = logging.getLogger(__name__)

# The embedded default's broadcasters wake through these (set by leaderboard.broadcast).
_wakers: list[Callable[[], None]] = []


def register_waker(wake: Callable[[], None]) -> None:
    """An embedded default's broadcaster: called by `mark_dirty` to push at once."""
    if wake not in _wakers:
        _wakers.append(wake)


def user_group(user_id: uuid.UUID | str) -> str:
    return f"leaderboard.user.{user_id}"


class _LocalState:
    """The embedded default's stand-in for the Redis keys below (one process)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dirty_since: float | None = None
        self.version = 0
        self.last_top: Sequence[Mapping[str, Any]] = []
        self.last_push = float("-inf")  # time.monotonic() of the last push


local_state = _LocalState()


def bus_keys() -> dict[str, str]:
    base = f"{settings.REDIS_KEY_PREFIX}:lb"
    names = ("tick", "pv", "pvrun", "last")
    return {name: f"{base}:{name}" for name in names}


# The push version counts pushes (a client that sees a gap asks for a snapshot) and never
# goes backwards, whatever Redis lost: `pvrun` holds the run_id of the Redis process that
# counted it, and a Redis that no longer has it (flushed, or restarted, perhaps from an
# older snapshot, or a replica promoted in its place) starts counting again from its
# clock in microseconds, above every version counted before (pushes come at most once an
# interval, far slower than the clock). Written with '%.0f': Redis formats a Lua number
# with 14 digits.
def push_channel() -> str:
    """The Redis pub/sub channel that carries each encoded push to every process."""
    return f"{settings.REDIS_KEY_PREFIX}:lb:push"


def me_channel() -> str:
    """The Redis pub/sub channel that carries each `me.update` to every process."""
    return f"{settings.REDIS_KEY_PREFIX}:lb:me"


def publish_me_update(
    user_id: uuid.UUID | str, *, score: int, rank: int | None, boards: list[Any] | None = None
) -> None:
    """Tell a user's own sockets, on whichever process they are, their new score and rank:
    one PUBLISH from the writer (no event loop, no thread hop); each process's subscriber
    writes it to that user's local sockets. Raises on Redis errors."""
    text = events.encode_me_update(score, rank, boards)
    bus_redis().publish(me_channel(), f"{user_id}\n{text}")


def dirty_channel() -> str:
    """The Redis pub/sub channel that wakes every process's broadcaster after a change."""
    return f"{settings.REDIS_KEY_PREFIX}:lb:dirty"


def bus_redis() -> Any:
    return redis_strict()


def mark_dirty() -> None:
    """Tell the broadcaster the board may have changed, and wake it now.

    The Redis index marks itself dirty; this PUBLISHes a wake-up so that the first change
    after a quiet interval is pushed at once instead of at the next poll (the
    broadcasters still poll every interval, so a lost wake-up only costs latency).
    Never raises: the caller's score is already committed.
    """
    if settings.EMBEDDED:
        with local_state.lock:
            if local_state.dirty_since is None:
                local_state.dirty_since = time.time()
        for wake in _wakers:
            wake()
        return
    try:
        bus_redis().publish(dirty_channel(), b"")
    except Exception:
        metrics.backing_service_errors.labels("redis").inc()
        logger.warning("could not wake the broadcasters; they will poll")
