"""Suite-wide fixtures: the real services, personas and API clients."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from accounts import tokens
from tests.factories import ActionTypeFactory, UserFactory
from tests.geoip import write_city_database


def _answers(url: str, default_port: int) -> tuple[str, bool]:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=3):
            return f"{host}:{port}", True
    except OSError:
        return f"{host}:{port}", False


def pytest_configure(config: pytest.Config) -> None:
    """Refuse to run without the real services: no silent skips."""
    db = settings.DATABASES["default"]
    where, ok = _answers(
        f"postgres://{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}", 5432
    )
    if not ok:
        pytest.exit(f"PostgreSQL does not answer at {where} (DATABASE_URL).", returncode=3)
    where, ok = _answers(settings.REDIS_URL, 6379)
    if not ok:
        pytest.exit(f"Redis does not answer at {where} (REDIS_URL).", returncode=3)


@pytest.fixture(scope="session", autouse=True)
def _clean_redis_keys() -> Iterator[None]:
    """Delete this run's Redis keys (all under its own prefix) when the run ends."""
    yield
    _delete_run_keys()


@pytest.fixture(scope="session", autouse=True)
def _close_stray_connections(django_db_setup, django_db_blocker) -> Iterator[None]:  # type: ignore[no-untyped-def]
    """End connections that worker threads left open, so the test database can be dropped."""
    yield
    from django.db import connection

    if not connection.settings_dict["NAME"].startswith("test_"):
        return  # no test of this run used the database
    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


@pytest.fixture(autouse=True)
def _fresh_redis_and_caches() -> Iterator[None]:
    """Each test starts with no keys of this run in Redis (index, caches, counters) and
    empty local caches. Only this run's prefix: other runs share the server."""
    from django.core.cache import caches

    from actions.action_types import action_types
    from core.ratelimit import ratelimit_reset_local
    from core.redis_pool import breaker
    from leaderboard.boards import active_boards

    action_types.forget()
    active_boards.forget()
    breaker.reset()  # a test that broke Redis on purpose leaves it closed for the next
    yield
    action_types.forget()
    active_boards.forget()
    _delete_run_keys()
    for alias in settings.CACHES:
        if not hasattr(caches[alias], "delete_pattern"):
            caches[alias].clear()
    ratelimit_reset_local()


def _delete_run_keys() -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    keys = list(client.scan_iter(match=f"{settings.REDIS_KEY_PREFIX}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start : start + 500])
    client.close()


@pytest.fixture
def alice(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="alice")


@pytest.fixture
def bob(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="bob")


@pytest.fixture
def mallory(db):  # type: ignore[no-untyped-def]
    """The persona who cheats."""
    return UserFactory(username="mallory")


@pytest.fixture
def action_type(db):  # type: ignore[no-untyped-def]
    return ActionTypeFactory(id="quiz", reward=25)


@pytest.fixture
def api_client() -> APIClient:
    return APIClient()


def access_token_for(user) -> str:  # type: ignore[no-untyped-def]
    return tokens.access_token_for(user)


@pytest.fixture
def client_for() -> Callable[..., APIClient]:
    """An API client that sends a real access token for the given user."""

    def make(user) -> APIClient:  # type: ignore[no-untyped-def]
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
        return client

    return make


@pytest.fixture
def click(db):  # type: ignore[no-untyped-def]
    """An action with no cooldown, no minimum duration and no cap."""
    return ActionTypeFactory(id="click", reward=5)


@pytest.fixture
def start() -> Callable[..., str]:
    """Start an action through the API and return its token."""

    def run(client: APIClient, action_id: str) -> str:
        response = client.post(f"/api/v1/actions/{action_id}/start/")
        assert response.status_code == 201, response.content
        return response.json()["actionToken"]

    return run


@pytest.fixture
def complete() -> Callable[..., Any]:
    def run(client: APIClient, action_id: str, token: str, **headers: str):  # type: ignore[no-untyped-def]
        return client.post(
            "/api/v1/actions/complete/",
            {"actionId": action_id, "actionToken": token},
            format="json",
            **headers,
        )

    return run


@pytest.fixture
def redis_down(settings):  # type: ignore[no-untyped-def]
    """Point every Redis client of the app at a port where nothing listens."""
    from core.ratelimit import ratelimit_reset_local

    ratelimit_reset_local()
    closed = "redis://127.0.0.1:1/0"
    settings.CACHES = {
        alias: {**config, "LOCATION": closed} for alias, config in settings.CACHES.items()
    }
    settings.REDIS_URL = closed
    yield
    ratelimit_reset_local()


@pytest.fixture
def redis_calls(monkeypatch) -> list[str]:  # type: ignore[no-untyped-def]
    """Every round trip to Redis, still sent: a command's name, or a pipeline's command
    names separated by spaces."""
    calls: list[str] = []
    send_command = redis.Redis.execute_command
    send_pipeline = redis.client.Pipeline.execute

    def command(self, *args, **options):  # type: ignore[no-untyped-def]
        calls.append(str(args[0]))
        return send_command(self, *args, **options)

    def pipeline(self, *args, **options):  # type: ignore[no-untyped-def]
        calls.append(" ".join(str(queued[0][0]) for queued in self.command_stack))
        return send_pipeline(self, *args, **options)

    monkeypatch.setattr(redis.Redis, "execute_command", command)
    monkeypatch.setattr(redis.client.Pipeline, "execute", pipeline)
    return calls


@pytest.fixture
def drains_held() -> Iterator[Any]:
    """The broker's edge: the audit drain is queued but not run (Celery is eager in the
    tests), so a test runs it, or counts how often it was queued."""
    from unittest import mock

    from fraud.tasks import audit_drain

    with mock.patch.object(audit_drain, "apply_async") as queued:
        yield queued


@pytest.fixture(scope="session")
def geoip_file(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The small City database of tests/geoip.py, written once per run."""
    return write_city_database(tmp_path_factory.mktemp("geoip") / "GeoLite2-City.mmdb")


@pytest.fixture
def geoip(settings, geoip_file: Path) -> Path:  # type: ignore[no-untyped-def]
    """GEOIP_PATH pointed at the test City database."""
    settings.GEOIP_PATH = str(geoip_file)
    return geoip_file
