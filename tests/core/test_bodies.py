"""Bodies without Content-Length (chunked) through the project's own ASGI and WSGI
applications (config.asgi, config.wsgi): 413 past the limit, parsed below it. The real
servers are driven in tests/e2e/test_hostile_input.py."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from asgiref.testing import ApplicationCommunicator

import config.wsgi
from config.asgi import application as asgi_application

pytestmark = pytest.mark.django_db(transaction=True)

OVERSIZE = json.dumps({"username": "u", "password": "x" * 120_000}).encode()
# Credentials that are read, checked and refused: 401, where an unread body is 400.
UNDERSIZE = json.dumps({"username": "nobody", "password": "wrong", "pad": "x" * 9_000}).encode()


def chunks(data: bytes, size: int = 8192) -> list[bytes]:
    return [data[start : start + size] for start in range(0, len(data), size)]


async def asgi_post(body_parts: list[bytes]) -> tuple[int, dict[str, Any]]:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/auth/token/",
        "raw_path": b"/api/v1/auth/token/",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
    }
    communicator = ApplicationCommunicator(asgi_application, scope)
    for index, part in enumerate(body_parts):
        more = index < len(body_parts) - 1
        await communicator.send_input({"type": "http.request", "body": part, "more_body": more})
    start = await communicator.receive_output(timeout=10)
    content = b""
    while True:
        message = await communicator.receive_output(timeout=10)
        content += message.get("body", b"")
        if not message.get("more_body"):
            break
    await communicator.send_input({"type": "http.disconnect"})
    await communicator.wait(timeout=10)
    return start["status"], json.loads(content)


async def test_it_answers_413_to_a_chunked_body_over_the_limit_under_asgi() -> None:
    status, body = await asgi_post(chunks(OVERSIZE))
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


async def test_it_reads_a_chunked_body_under_the_limit_under_asgi() -> None:
    status, body = await asgi_post(chunks(UNDERSIZE, 1000))
    assert status == 401, body
    assert body["error"]["code"] == "credentials_invalid"


def wsgi_post(body: bytes) -> tuple[str, dict[str, Any]]:
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/api/v1/auth/token/",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "HTTP_TRANSFER_ENCODING": "chunked",
        # What gunicorn gives for a chunked body: the de-chunked stream, read to its end.
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.url_scheme": "http",
        "wsgi.errors": io.StringIO(),
        "wsgi.version": (1, 0),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    statuses: list[str] = []
    content = b"".join(
        config.wsgi.application(environ, lambda status, headers, *_: statuses.append(status))
    )
    return statuses[0], json.loads(content)


def test_it_answers_413_to_a_chunked_body_over_the_limit_under_wsgi() -> None:
    status, body = wsgi_post(OVERSIZE)
    assert status.startswith("413"), body
    assert body["error"]["code"] == "payload_too_large"


def test_it_reads_a_chunked_body_under_the_limit_under_wsgi() -> None:
    status, body = wsgi_post(UNDERSIZE)
    assert status.startswith("401"), body
    assert body["error"]["code"] == "credentials_invalid"
