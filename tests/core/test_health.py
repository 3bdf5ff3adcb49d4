"""/healthz and /readyz, against the real services and against a Redis that is down."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from tests.support import run_django


def test_it_says_the_process_is_up(client: Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/healthz"), ("get", "/readyz"), ("get", "/metrics"), ("post", "/healthz")],
)
def test_its_answers_carry_their_length(client: Client, method: str, path: str) -> None:
    # Without Content-Length a WSGI server sends the body chunked (these answers are
    # made before Django's CommonMiddleware, which sizes the others).
    response = getattr(client, method)(path)
    assert not response.streaming
    assert response["Content-Length"] == str(len(response.content)), response.status_code
    assert len(response.content) > 0


def test_it_answers_probes_whatever_the_host_header(client: Client) -> None:
    response = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200


def test_it_refuses_writes_to_health_endpoints(client: Client) -> None:
    response = client.post("/healthz")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.django_db
def test_it_is_ready_when_every_service_answers(client: Client) -> None:
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "redis", "channel_layer"}
    assert all(check["ok"] for check in body["checks"].values())


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _readyz_in_a_process(extra_env: dict[str, str]) -> tuple[int, dict]:
    """Ask /readyz of a fresh Django process configured only by the environment."""
    db = settings.DATABASES["default"]
    code = (
        "import django, json; django.setup();"
        "from django.test import Client;"
        "r = Client().get('/readyz', HTTP_HOST='10.1.2.3');"
        "print(json.dumps({'status': r.status_code, 'body': r.json()}))"
    )
    done = run_django(
        ["-c", code],
        {
            "DEBUG": "0",
            "SECRET_KEY": "x" * 50,
            "JWT_SIGNING_KEY": "y" * 50,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/postgres",
            **extra_env,
        },
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return result["status"], result["body"]


def test_it_names_redis_when_redis_is_down() -> None:
    status, body = _readyz_in_a_process({"REDIS_URL": f"redis://127.0.0.1:{_closed_port()}/0"})
    assert status == 503
    assert body["status"] == "unavailable"
    assert body["error"]["code"] == "service_unavailable"
    assert "redis" in body["error"]["details"]["down"]
    assert "redis" in body["error"]["message"]
    assert body["checks"]["database"]["ok"] is True


def test_it_names_the_database_when_postgres_is_down() -> None:
    status, body = _readyz_in_a_process(
        {
            "REDIS_URL": settings.REDIS_URL,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:{_closed_port()}/postgres",
        }
    )
    assert status == 503
    assert body["error"]["details"]["down"] == ["database"]


def test_it_is_ready_on_the_embedded_default(tmp_path: Path) -> None:
    status, body = _readyz_in_a_process(
        {"REDIS_URL": "", "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"}
    )
    assert status == 200, body
    assert set(body["checks"]) == {"database", "channel_layer"}
