"""What a server process would otherwise import on its first requests, imported when it
loads the application.

Django resolves the URLconf on the first request, and the project imports some modules
inside the functions that use them (task modules, the broadcaster, the leaderboard's
services). Measured here, that made a process's first completion take about 0.6 s
instead of 10 ms: every gunicorn worker paid it after each (re)start, including the
recycling of `max_requests`, and a completion accepted meanwhile reached live viewers
that much later. gunicorn loads the application in its master (`preload_app`), so the
workers it forks start with all of it imported; daphne loads it once at start.

Only imports and objects that open no connection: a socket opened before gunicorn forks
would be shared by every worker.

What was loaded is then kept out of the garbage collector's full passes (`gc.freeze`,
`freeze_loaded`): a server's modules, classes and settings live as long as the process,
and each full pass walked all of them (about 150,000 objects) while holding the GIL.
Measured under the bench's loads, a gunicorn worker's full pass took 60-133 ms, during
which its four threads answered nothing: that was the p99 of the completions (170 ms
against a p50 of 37 ms) and of the reads with a token. Frozen, a full pass takes 6-16 ms.
"""

from __future__ import annotations

import gc
import importlib
import pkgutil
from pathlib import Path

# Modules that are not request code: data migrations, commands, tests.
SKIPPED = (".migrations", ".management", ".tests")


def project_modules() -> list[str]:
    """Every module of the project's own apps (the installed apps at the project root)."""
    from django.apps import apps
    from django.conf import settings

    names: list[str] = []
    for app in apps.get_app_configs():
        if Path(app.path).parent != Path(settings.BASE_DIR):
            continue  # a library's app
        if app.module is None:
            continue
        found = pkgutil.walk_packages(app.module.__path__, prefix=f"{app.name}.")
        names.extend(m.name for m in found if not any(part in m.name for part in SKIPPED))
    return names


def import_request_code() -> None:
    """Import the URLconf (and so every view), the project's modules and the cache and
    task-publishing machinery. Django must be set up."""
    from django.conf import settings
    from django.core.cache import caches
    from django.urls import get_resolver

    resolver = get_resolver()
    resolver.reverse_dict  # noqa: B018 (resolving and reversing are both ready)
    for name in project_modules():
        importlib.import_module(name)
    for alias in settings.CACHES:
        caches[alias]  # the backend's modules; its client connects on first use
    from config.celery import app

    app.amqp  # noqa: B018 (the task-publishing modules; no broker connection yet)


def freeze_loaded() -> None:
    """Move every object alive now into the collector's permanent generation, which its
    passes skip (Python's `gc.freeze`: done before gunicorn forks, the workers also share
    those pages instead of copying them as a pass touches each object's header). The
    garbage of the loading is collected first: once frozen, it would never be."""
    gc.collect()
    gc.freeze()
