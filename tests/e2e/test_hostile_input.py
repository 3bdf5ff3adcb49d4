"""Hostile input over real sockets: daphne (the server of `make run`), gunicorn, and nginx
in front of both, as a client outside would send it (issue 19). Deeply nested JSON,
chunked bodies past the limit, paths no route matches, a foreign Host header, and a
WebSocket frame nested 4,000 deep: never a 5xx, always the envelope (SPEC.md,
Conventions)."""

from __future__ import annotations

import asyncio
import http.client
import json
from collections.abc import Iterator
from typing import Any

import pytest
import websockets

from deploy.stack import Stack
from tests.conftest import access_token_for
from tests.factories import UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SERVERS = ["daphne", "gunicorn", "nginx"]
JSON_ENDPOINTS = [
    "/api/v1/actions/complete/",
    "/api/v1/auth/register/",
    "/api/v1/auth/token/",
    "/api/v1/auth/token/refresh/",
    "/api/v1/auth/logout/",
]
DEEP_BODIES = {
    "20,000 nested arrays": b"[" * 20_000 + b"]" * 20_000,
    "10,000 nested objects": b'{"a":' * 10_000 + b"1" + b"}" * 10_000,
}


@pytest.fixture(scope="module")
def stack(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=1, ws=1, worker=False)


def port_of(stack: Stack, server: str) -> int:
    return {"daphne": stack.ws_ports[0], "gunicorn": stack.web_ports[0], "nginx": stack.port}[
        server
    ]


def send(
    port: int,
    method: str,
    path: str,
    body: bytes | Iterator[bytes] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request as written: the path unnormalised, a generator body sent chunked."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host="Host" in (headers or {}))
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if isinstance(body, bytes):
            connection.putheader("Content-Length", str(len(body)))
        elif body is not None:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        if isinstance(body, bytes):
            connection.send(body)
        elif body is not None:
            for chunk in body:
                connection.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            connection.send(b"0\r\n\r\n")
        response = connection.getresponse()
        return response.status, dict(response.headers), response.read()
    finally:
        connection.close()


def envelope(status: int, headers: dict[str, str], content: bytes) -> dict[str, Any]:
    assert status < 500, content[:300]
    assert headers.get("Content-Type", "").startswith("application/json"), (status, content[:300])
    body = json.loads(content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    return body["error"]


def chunks(data: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.fixture
def bearer(db) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {access_token_for(UserFactory(username='hostile'))}"}


@pytest.mark.parametrize("server", SERVERS)
def test_it_answers_400_to_deeply_nested_json_on_every_server(
    stack: Stack, server: str, bearer: dict[str, str]
) -> None:
    for path in JSON_ENDPOINTS:
        for name, body in DEEP_BODIES.items():
            answer = send(
                port_of(stack, server),
                "POST",
                path,
                body,
                {**bearer, "Content-Type": "application/json"},
            )
            assert answer[0] == 400, (path, name, answer[2][:300])
            assert envelope(*answer)["code"] == "malformed_request", (path, name)


REGISTRATION_120_KB = json.dumps(
    {"username": "chunky", "email": "chunky@example.com", "password": "x" * 120_000}
).encode()


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_it_answers_413_to_a_body_over_the_limit_however_it_is_sent(
    stack: Stack, server: str, framing: str
) -> None:
    body = chunks(REGISTRATION_120_KB) if framing == "chunked" else REGISTRATION_120_KB
    answer = send(
        port_of(stack, server),
        "POST",
        "/api/v1/auth/register/",
        body,
        {"Content-Type": "application/json"},
    )
    assert answer[0] == 413, answer[2][:300]
    assert envelope(*answer)["code"] == "payload_too_large"


@pytest.mark.parametrize("server", SERVERS)
def test_it_reads_a_chunked_body_under_the_limit(stack: Stack, server: str) -> None:
    body = json.dumps(
        {"username": "nobody", "password": "wrong-password", "pad": "x" * 10_000}
    ).encode()
    answer = send(
        port_of(stack, server),
        "POST",
        "/api/v1/auth/token/",
        chunks(body, 1000),
        {"Content-Type": "application/json"},
    )
    # The credentials were read and checked: not 400 "this field is required".
    assert answer[0] == 401, answer[2][:300]
    assert envelope(*answer)["code"] == "credentials_invalid"


UNROUTED = [
    "/api/v1/actions/PR-TAP/start/",
    "/api/v1/actions/%00/start/",
    f"/api/v1/actions/{'a' * 300}/start/",
    "/api/v1/actions/..%2f..%2f/start/",
    "/api/v1/actions/click%20/start/",
    "/api/v1/actions/%F0%9F%98%80/start/",
    "/api/v1/actions/%27%20OR%201%3D1%20--/start/",
]


@pytest.mark.parametrize("server", SERVERS)
def test_it_answers_404_to_a_post_to_an_unrouted_api_path(
    stack: Stack, server: str, bearer: dict[str, str]
) -> None:
    for path in UNROUTED:
        answer = send(port_of(stack, server), "POST", path, b"", bearer)
        if server == "nginx" and "%00" in path:
            # nginx itself refuses a NUL in the path (400) before any upstream sees it.
            assert answer[0] == 400, (path, answer[2][:300])
            continue
        assert answer[0] == 404, (path, answer[2][:300])
        assert envelope(*answer)["code"] == "not_found", path


@pytest.mark.parametrize("server", SERVERS)
def test_it_answers_a_foreign_host_with_400_in_the_envelope(stack: Stack, server: str) -> None:
    for method, path in (("GET", "/api/v1/leaderboard/"), ("POST", "/api/v1/auth/token/")):
        answer = send(
            port_of(stack, server),
            method,
            path,
            b"{}" if method == "POST" else None,
            {"Host": "evil.example", "Content-Type": "application/json"},
        )
        assert answer[0] == 400, (method, answer[2][:300])
        assert envelope(*answer)["code"] == "bad_request"


async def _frames(port: int, frames: list[str]) -> list[dict[str, Any]]:
    url = f"ws://127.0.0.1:{port}/ws/leaderboard/"
    async with websockets.connect(url, origin=f"http://127.0.0.1:{port}", open_timeout=10) as ws:
        answers = [json.loads(await asyncio.wait_for(ws.recv(), timeout=10))]
        for frame in frames:
            await ws.send(frame)
            answers.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=10)))
        return answers


@pytest.mark.parametrize("server", ["daphne", "nginx"])
def test_it_answers_a_frame_nested_4000_deep_and_stays_open(stack: Stack, server: str) -> None:
    nested = "[" * 4_000
    assert len(nested.encode()) < 4096
    answers = asyncio.run(
        _frames(port_of(stack, server), [nested, "[" * 2_000 + "]" * 2_000, '{"type": "ping"}'])
    )
    assert answers[0]["type"] == "leaderboard.snapshot"
    assert [a["type"] for a in answers[1:]] == ["error", "error", "pong"]
    assert {a["code"] for a in answers[1:3]} == {"invalid_json"}
