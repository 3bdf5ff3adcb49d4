"""Side effects after commit that must not fail the request that committed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction


def after_commit(func: Callable[..., Any], /, **kwargs: Any) -> None:
    """Call `func(**kwargs)` once the current transaction commits; if it raises, log it
    and carry on with the other hooks (`robust`).

    Not `on_commit(partial(...), robust=True)`: Django 5.2 names a failing robust hook by
    its `__qualname__`, which a partial lacks, so the failure became an AttributeError
    that escaped the commit (a 500 for a committed completion, and the hooks after it
    never ran).
    """

    def call() -> None:
        func(**kwargs)

    call.__qualname__ = getattr(func, "__qualname__", repr(func))
    transaction.on_commit(call, robust=True)
