"""Every wait on PostgreSQL bounded in the client, not only in the server.

`statement_timeout` and `lock_timeout` are enforced by the server, and TCP keepalives and
`tcp_user_timeout` by the kernel only for packets that go unacknowledged. A server that
stalls (or a proxy in front of it that stops forwarding, whose kernel still acknowledges
every byte) answers none of them, and psycopg would wait for its reply forever. A
`BoundedConnection` gives up after DB_CLIENT_TIMEOUT_SECONDS (a little longer than the
statement timeout, so a slow query is cancelled by the server first), closes the
connection (its protocol state is unknown) and raises OperationalError: the request
answers 503 `service_unavailable`.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db.backends.signals import connection_created
from django.dispatch import receiver
from psycopg import errors
from psycopg.abc import PQGen

RV = TypeVar("RV")

_budget = threading.local()


class BoundedConnection(psycopg.Connection[Any]):
    """A psycopg connection whose every wait for the server ends within a bound."""

    def wait(self, gen: PQGen[RV], interval: float = 0.1, timeout: float | None = None) -> RV:
        if timeout is not None:  # psycopg's own bounded waits (notifies, cancel)
            return super().wait(gen, interval=interval, timeout=timeout)
        bound = getattr(_budget, "seconds", None) or settings.DB_CLIENT_TIMEOUT_SECONDS
        if not bound:
            return super().wait(gen, interval=interval)
        try:
            return super().wait(gen, interval=interval, timeout=bound)
        except errors._WaitTimeout:
            # Mid-protocol: the next reply could belong to this request; never reuse it.
            self.pgconn.finish()
            raise errors.OperationalError(
                f"the database did not answer within {bound:g} s; connection closed"
            ) from None


@contextlib.contextmanager
def wait_budget(seconds: float) -> Iterator[None]:
    """Bound this thread's waits on the database more tightly (a readiness probe)."""
    previous = getattr(_budget, "seconds", None)
    _budget.seconds = seconds
    try:
        yield
    finally:
        _budget.seconds = previous


@receiver(connection_created)
def _bound_waits(sender: object, connection: Any, **kwargs: Any) -> None:
    """Connections Django opens itself (no pool: gunicorn, Celery, commands) become
    bounded; the pool makes BoundedConnections already (settings: `connection_class`)."""
    raw = getattr(connection, "connection", None)
    if type(raw) is psycopg.Connection:
        # No new state, only the overridden wait(): the instance is safe to re-class.
        raw.__class__ = BoundedConnection
