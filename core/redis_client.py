"""The one way the project's code reaches Redis synchronously: the `strict` cache
alias's client (django-redis), which raises on Redis errors instead of hiding them and
whose pool is the kernel's blocking, breaker-guarded pool (core.redis_pool)."""

from __future__ import annotations

from typing import Any

from django_redis import get_redis_connection


def redis_strict() -> Any:
    """The `strict` alias's redis-py client (a shared pool: cheap to ask for each time)."""
    return get_redis_connection("strict")
