"""End-to-end tests start real servers (deploy.stack) on loopback ports of their own,
against this run's test database and Redis prefix, and stop them by pid when done."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from django.conf import settings

from deploy.stack import Stack


def test_database_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="module")
def start_stack(django_db_setup, django_db_blocker) -> Iterator[Callable[..., Stack]]:  # type: ignore[no-untyped-def]
    """Start a Stack on the test database; every stack started is stopped at module end."""
    started: list[Stack] = []

    def start(**options: object) -> Stack:
        options = {"beat": False, "bootstrap": False, "gunicorn_workers": 1, **options}
        stack = Stack(database_url=test_database_url(), redis_url=settings.REDIS_URL, **options)  # type: ignore[arg-type]
        started.append(stack)
        with django_db_blocker.unblock():
            return stack.start()

    yield start
    for stack in started:
        stack.cleanup()
