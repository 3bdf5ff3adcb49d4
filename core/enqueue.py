"""Queue a Celery task by its registered name, so a service never imports a `tasks.py`
(which imports the services: the circle HackSoft's styleguide warns of)."""

from __future__ import annotations

from typing import Any

from celery import current_app


def task_enqueue(name: str, *, countdown: float | None = None, **kwargs: Any) -> None:
    """Send task `name` with `kwargs` through the registered task's own `apply_async`, so
    that `CELERY_TASK_ALWAYS_EAGER` (the embedded default) runs it at once. Raises what
    the broker raises: the caller decides how a failure to queue degrades."""
    task = current_app.tasks.get(name)
    if task is None:
        # Not imported yet in this process: the apps' tasks modules are found the way a
        # worker finds them (Celery's autodiscovery), never by importing them here.
        current_app.loader.import_default_modules()
        task = current_app.tasks[name]
    options: dict[str, Any] = {} if countdown is None else {"countdown": countdown}
    if kwargs:
        options["kwargs"] = kwargs
    task.apply_async(**options)
