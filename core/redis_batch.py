"""One Redis round trip for the Redis work of several apps in one request.

A completion talks to Redis for three apps at two moments. Before its transaction: the
rate limits (core.ratelimit) and the fraud rules' signals (fraud). After its
commit: the leaderboard's index write (with the broadcasters' wake-up and the user's
me.update), the audit outbox and the fraud rules' memory. Each app queues its commands
with `redis_later`. Inside a `redis_batch()` block they are sent as one pipeline when the
block ends, and each part then hears its own replies; outside one, a part is sent at
once. On this machine a round trip costs several times the CPU of the commands it
carries, so five round trips become two.

A part's `done` receives its replies (a list, one per command it queued, an exception
in place of a command that failed) or the exception that failed the whole pipeline, and
handles both, falling back as the app would without Redis. It must not raise (what it
raises is logged and dropped): after a commit, the work it follows is already done.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from core.redis_client import redis_strict

logger = logging.getLogger(__name__)

Queue = Callable[[Any], None]
Done = Callable[[list[Any] | Exception], None]


@dataclass(frozen=True)
class _Part:
    queue: Queue
    done: Done


_parts: ContextVar[list[_Part] | None] = ContextVar("redis_batch", default=None)


def _client() -> Any:
    return redis_strict()


@contextmanager
def redis_batch() -> Iterator[None]:
    """Send every part queued inside the block in one pipeline when it ends (even if the
    block raised: what was queued after a commit must still be sent)."""
    if _parts.get() is not None:  # nested: the outer block sends
        yield
        return
    parts: list[_Part] = []
    token = _parts.set(parts)
    try:
        yield
    finally:
        _parts.reset(token)
        _send(parts)


def redis_later(queue: Queue, done: Done) -> None:
    """`queue(pipeline)` adds commands; `done(replies or error)` hears how they went."""
    parts = _parts.get()
    if parts is None:
        _send([_Part(queue, done)])
    else:
        parts.append(_Part(queue, done))


def _send(parts: list[_Part]) -> None:
    if not parts:
        return
    spans: list[tuple[int, int]] = []
    try:
        pipe = _client().pipeline(transaction=False)
        for part in parts:
            begin = len(pipe)
            part.queue(pipe)
            spans.append((begin, len(pipe)))
        replies = pipe.execute(raise_on_error=False)
    except Exception as exc:
        for part in parts:
            _tell(part, exc)
        return
    for part, (begin, end) in zip(parts, spans, strict=True):
        _tell(part, replies[begin:end])


def _tell(part: _Part, outcome: list[Any] | Exception) -> None:
    try:
        part.done(outcome)
    except Exception:
        logger.exception("batched Redis work failed in %s", part.done)
