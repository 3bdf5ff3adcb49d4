"""The Celery application: configured from Django settings (`CELERY_*`).

Logging: the worker and beat use the project's LOGGING (JSON lines on stderr) instead of
Celery's own format, and each task runs with the request id of the request that queued it
(sent as the `request_id` message header).
"""

import logging
import os
from typing import Any

from celery import Celery, signals

from core.logs import configure, request_id_var

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("scoreboard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

REQUEST_ID_HEADER = "request_id"
logger = logging.getLogger("scoreboard.tasks")


@signals.setup_logging.connect
def _configure_logging(**kwargs: Any) -> None:
    """Connected, so Celery leaves the root logger to Django's LOGGING."""
    from django.conf import settings

    configure(settings.LOGGING)


@signals.before_task_publish.connect
def _send_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = request_id_var.get()
    if request_id and headers is not None:
        headers.setdefault(REQUEST_ID_HEADER, request_id)


@signals.task_prerun.connect
def _enter_request_id(task: Any = None, task_id: str | None = None, **kwargs: Any) -> None:
    # A queued task finds the header on its request; an eager one (run in the request's
    # own thread) already has the id in its context.
    request_id = getattr(task.request, REQUEST_ID_HEADER, None) or request_id_var.get()
    task.request._request_id_token = request_id_var.set(request_id)
    logger.info("task %s started", task.name, extra={"task": task.name, "task_id": task_id})


@signals.task_postrun.connect
def _leave_request_id(task: Any = None, **kwargs: Any) -> None:
    token = getattr(task.request, "_request_id_token", None)
    if token is not None:
        request_id_var.reset(token)
        task.request._request_id_token = None
