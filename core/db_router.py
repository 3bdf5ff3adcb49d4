"""Reads that may lag go to the read replica (`DATABASE_REPLICA_URL`); everything else,
and every write, stays on the primary.

Which reads may lag is decided per request, not per model: the same `accounts.User` rows
serve the public board (fine a second behind) and "my score after my completion" (must
see the write). `ReplicaReadsMiddleware` turns replica reads on for safe-method requests
to the routes named in `DATABASE_REPLICA_ROUTES` (by default the public board and one
user's rank) made without credentials: a signed-in user's requests read the primary, so
they see their own completion on the board at once, and their token is checked against
accounts and sessions that may be younger than the replica's lag. `replica_reads()` does
the same for code outside a request. Inside a
transaction on the primary every read stays there, so a workflow reads its own writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse

REPLICA = "replica"
_replica_reads: ContextVar[bool] = ContextVar("replica_reads", default=False)


def replica_configured() -> bool:
    return REPLICA in settings.DATABASES


@contextmanager
def replica_reads() -> Iterator[None]:
    """Send the reads made inside to the replica (when one is configured)."""
    token = _replica_reads.set(True)
    try:
        yield
    finally:
        _replica_reads.reset(token)


class ReplicaRouter:
    """Reads to the replica inside `replica_reads()`; the primary for everything else."""

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        if (
            _replica_reads.get()
            and replica_configured()
            and not connections["default"].in_atomic_block
        ):
            return REPLICA
        return "default"

    def db_for_write(self, model: type, **hints: Any) -> str | None:
        return "default"

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        return True  # one database, copied: rows from either side are the same rows

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return db == "default"  # the replica follows the primary's schema by replication


class ReplicaReadsMiddleware:
    """Replica reads for anonymous GET/HEAD requests to DATABASE_REPLICA_ROUTES."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        finally:
            _replica_reads.set(False)

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> None:
        match = request.resolver_match
        if (
            request.method in ("GET", "HEAD")
            and match is not None
            and match.url_name in settings.DATABASE_REPLICA_ROUTES
            and "HTTP_AUTHORIZATION" not in request.META
            and settings.SESSION_COOKIE_NAME not in request.COOKIES
            and replica_configured()
        ):
            _replica_reads.set(True)
