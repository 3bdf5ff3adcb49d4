"""Queue a Celery task by its registered name, so a service never imports a `tasks.py`
(which imports the services: the circle HackSoft's styleguide warns of)."""

from __future__ import annotations

from typing import Any

from celery import current_app


def task_enqueue(name: str, *, countdown: float | None = None, **kwargs: Any) -> None:
    """Send task `name` with `kwargs` (eagerly run where `CELERY_TASK_ALWAYS_EAGER` is on,
    as the registered task's own `apply_async` does). Raises what the broker raises: the
    caller decides how a failure to queue degrades."""
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    current_app.signature(name, kwargs=kwargs).apply_async(**options)
