"""Past one machine: the replica router's decisions, and the settings wiring of the read
replica and of Redis Sentinel for django-redis, channels-redis and the Celery broker."""

from __future__ import annotations

import json

import pytest
from django.db import transaction
from django.test import Client

from core import db_router
from core.db_router import ReplicaRouter, replica_reads
from tests.support import run_django

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:Overriding setting DATABASES:UserWarning"),
]

PRINT_SETTINGS = """
import json, django
django.setup()
from django.conf import settings as s
print(json.dumps({
    "caches": s.CACHES, "channels": s.CHANNEL_LAYERS, "broker": s.CELERY_BROKER_URL,
    "transport": s.CELERY_BROKER_TRANSPORT_OPTIONS, "redis_url": s.REDIS_URL,
    "embedded": s.EMBEDDED, "databases": {k: {"NAME": v["NAME"], "HOST": v["HOST"],
    "PORT": v["PORT"], "TEST": v.get("TEST", {})} for k, v in s.DATABASES.items()},
}, default=str))
"""

BASE = {
    "DEBUG": "0",
    "SECRET_KEY": "s" * 50,
    "JWT_SIGNING_KEY": "k" * 50,
    "CELERY_BROKER_URL": None,
    "REDIS_SENTINELS": None,
    "DATABASE_REPLICA_URL": None,
}


def _settings(**env: str | None) -> dict:
    done = run_django(["-c", PRINT_SETTINGS], {**BASE, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_sentinel_wires_every_redis_client() -> None:
    found = _settings(
        REDIS_URL="redis://:pw@ignored-host:6379/2",
        REDIS_SENTINELS="10.0.0.1:26379, 10.0.0.2:26380,10.0.0.3",
        REDIS_SENTINEL_MASTER="scores",
    )
    sentinels = [["10.0.0.1", 26379], ["10.0.0.2", 26380], ["10.0.0.3", 26379]]
    assert found["redis_url"] == "redis://:pw@scores/2"
    assert found["embedded"] is False
    for cache in found["caches"].values():
        assert cache["LOCATION"] == "redis://:pw@scores/2"
        assert cache["OPTIONS"]["CLIENT_CLASS"] == "django_redis.client.SentinelClient"
        assert (
            cache["OPTIONS"]["CONNECTION_FACTORY"] == "django_redis.pool.SentinelConnectionFactory"
        )
        assert cache["OPTIONS"]["SENTINELS"] == sentinels
    (host,) = found["channels"]["default"]["CONFIG"]["hosts"]
    assert host["master_name"] == "scores"
    assert host["sentinels"] == sentinels
    assert host["db"] == 2
    assert host["password"] == "pw"
    assert found["broker"] == (
        "sentinel://:pw@10.0.0.1:26379/2;sentinel://:pw@10.0.0.2:26380/2;"
        "sentinel://:pw@10.0.0.3:26379/2"
    )
    assert found["transport"]["master_name"] == "scores"


def test_sentinel_keeps_an_explicit_broker_url() -> None:
    found = _settings(
        REDIS_SENTINELS="10.0.0.1:26379", CELERY_BROKER_URL="amqp://broker.internal//"
    )
    assert found["broker"] == "amqp://broker.internal//"
    assert found["redis_url"] == "redis://mymaster/0"


def test_sentinel_settings_refuse_a_bad_address() -> None:
    done = run_django(["-c", PRINT_SETTINGS], {**BASE, "REDIS_SENTINELS": "10.0.0.1:port"})
    assert done.returncode != 0
    assert "REDIS_SENTINELS" in done.stderr


def test_without_sentinel_the_clients_use_redis_url() -> None:
    found = _settings(REDIS_URL="redis://127.0.0.1:6379/0")
    assert "SENTINELS" not in found["caches"]["strict"]["OPTIONS"]
    (host,) = found["channels"]["default"]["CONFIG"]["hosts"]
    assert host["address"] == "redis://127.0.0.1:6379/0"
    assert found["broker"] == "redis://127.0.0.1:6379/0"


def test_replica_url_adds_a_mirrored_replica_alias() -> None:
    found = _settings(
        DATABASE_URL="postgres://app@10.0.0.5:5432/scoreboard",
        DATABASE_REPLICA_URL="postgres://app@10.0.0.6:5433/scoreboard",
    )
    assert found["databases"]["replica"]["HOST"] == "10.0.0.6"
    assert found["databases"]["replica"]["PORT"] == 5433
    assert found["databases"]["replica"]["TEST"]["MIRROR"] == "default"
    assert "replica" not in _settings(DATABASE_URL="postgres://app@10.0.0.5/s")["databases"]


def test_replica_needs_postgresql() -> None:
    done = run_django(
        ["-c", PRINT_SETTINGS],
        {**BASE, "DATABASE_URL": "sqlite:///x.db", "DATABASE_REPLICA_URL": "postgres://h/x"},
    )
    assert done.returncode != 0
    assert "DATABASE_REPLICA_URL" in done.stderr


@pytest.fixture
def with_replica(settings):  # type: ignore[no-untyped-def]
    """A replica alias in the settings (the router only names it; nothing connects)."""
    settings.DATABASES = {**settings.DATABASES, "replica": dict(settings.DATABASES["default"])}


@pytest.mark.django_db(transaction=True)  # no test transaction around the test
def test_the_router_reads_the_primary_unless_asked(with_replica) -> None:  # type: ignore[no-untyped-def]
    router = ReplicaRouter()
    assert router.db_for_read(object) == "default"
    with replica_reads():
        assert router.db_for_read(object) == "replica"
        with transaction.atomic():  # a workflow reads its own writes
            assert router.db_for_read(object) == "default"
    assert router.db_for_write(object) == "default"
    assert router.allow_migrate("replica", "accounts") is False


def test_the_router_reads_the_primary_without_a_replica() -> None:
    with replica_reads():
        assert ReplicaRouter().db_for_read(object) == "default"


@pytest.fixture
def reads(monkeypatch, settings):  # type: ignore[no-untyped-def]
    """Where the router would send each read of a request (answering it from default).
    The board is read from PostgreSQL (no Redis index), outside a test transaction."""
    settings.EMBEDDED = True
    decisions: list[str] = []
    original = ReplicaRouter.db_for_read

    def spy(self, model, **hints):  # type: ignore[no-untyped-def]
        decisions.append(original(self, model, **hints))
        return "default"

    monkeypatch.setattr(ReplicaRouter, "db_for_read", spy)
    return decisions


@pytest.mark.django_db(transaction=True)
def test_anonymous_board_reads_go_to_the_replica(with_replica, reads, alice) -> None:  # type: ignore[no-untyped-def]
    response = Client().get("/api/v1/leaderboard/", HTTP_HOST="localhost")
    assert response.status_code == 200
    assert reads
    assert set(reads) == {"replica"}
    reads.clear()
    Client().get(f"/api/v1/leaderboard/users/{alice.pk}/", HTTP_HOST="localhost")
    assert set(reads) == {"replica"}
    assert db_router._replica_reads.get() is False  # nothing leaks past the request


@pytest.mark.django_db(transaction=True)
def test_signed_in_and_own_reads_stay_on_the_primary(
    with_replica, reads, alice, client_for
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    for path in ("/api/v1/leaderboard/", "/api/v1/me/", "/api/v1/leaderboard/me/"):
        assert client.get(path, HTTP_HOST="localhost").status_code == 200, path
    assert reads
    assert set(reads) == {"default"}


@pytest.mark.django_db(transaction=True)
def test_writes_never_use_the_replica(with_replica, reads, alice, client_for, click, start) -> None:  # type: ignore[no-untyped-def]
    start(client_for(alice), "click")
    assert "replica" not in reads
