"""The errors nginx answers itself (400, 405, 413, 414, 502-504 and friends) come in the
API's error envelope with an `X-Request-ID`, like every other response through the proxy:
driven with raw HTTP, as odd clients send it."""

from __future__ import annotations

import json
import socket
import time
from collections import Counter

import pytest

from deploy.stack import Stack

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=1, ws=1, worker=False)


def raw(stack: Stack, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send `request` as is; (status, headers with lower-case names, body)."""
    with socket.create_connection(("127.0.0.1", stack.port), timeout=10) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status_line.split()[1]), headers, body


def get(path: str, *, method: str = "GET", extra: str = "") -> bytes:
    return (
        f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n".encode()
    )


ODD = {
    "nul in the path": (get("/%00"), 400, "malformed_request"),
    "TRACE": (get("/api/v1/leaderboard/", method="TRACE"), 405, "method_not_allowed"),
    "a 32 KB URI": (get("/api/v1/leaderboard/?q=" + "a" * 32_768), 414, "uri_too_long"),
    "headers too large": (get("/", extra=f"X-Big: {'b' * 40_000}\r\n"), 400, "headers_too_large"),
    "a broken request line": (b"GARBAGE\r\n\r\n", 400, "malformed_request"),
    "no Host in HTTP/1.1": (
        b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
        400,
        "malformed_request",
    ),
    "an unknown transfer coding": (
        b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Transfer-Encoding: gzip\r\n\r\n",
        501,
        "not_implemented",
    ),
    "the proxy's own error page": (get("/_proxy_error/internal"), 404, "not_found"),
    "a body too large": (
        b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: 70000\r\n\r\n" + b" " * 70_000,
        413,
        "payload_too_large",
    ),
}


@pytest.mark.parametrize("case", list(ODD))
def test_nginx_answers_its_own_errors_in_the_envelope_with_a_request_id(
    stack: Stack, case: str
) -> None:
    request, status, code = ODD[case]
    got, headers, body = raw(stack, request)
    assert got == status, body[:300]
    assert headers.get("content-type") == "application/json", headers
    assert json.loads(body)["error"]["code"] == code
    assert len(headers.get("x-request-id", "")) == 32, headers


MIX = [
    get("/api/v1/leaderboard/"),
    get("/api/v1/leaderboard/?limit=1000"),
    get("/api/v1/actions/"),
    get("/healthz"),
    get("/readyz"),
    get("/api/v1/no-such-thing/"),
    get("/"),
    get("/api/v1/leaderboard/", method="HEAD"),
    get("/api/v1/leaderboard/", method="OPTIONS"),
    get("/api/v1/leaderboard/", method="DELETE"),
    get("/api/v1/leaderboard/", method="FOO"),
    get("/api/v1/leaderboard/", extra='If-None-Match: "x"\r\n'),
    get("/metrics"),
    get("/ws/leaderboard/"),
    get("/admin/login/"),
    get("/api/schema/"),
    get("/static/no-such-file.js"),
    get("/api/v1/me/", extra="Authorization: Bearer not-a-token\r\n"),
    get("/", extra="Host: evil.example\r\n").replace(b"Host: 127.0.0.1\r\n", b""),
    get("/../../etc/passwd"),
    get("/%zz"),
    b"POST /api/v1/auth/token/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    b"Content-Type: application/json\r\nContent-Length: 5\r\n\r\n{oops",
    b"GET / HTTP/1.0\r\n\r\n",
    *(request for request, _, _ in ODD.values()),
]


def test_every_answer_through_the_proxy_carries_a_request_id(stack: Stack) -> None:
    missing: Counter[tuple[bytes, int]] = Counter()
    statuses: Counter[int] = Counter()
    deadline = time.monotonic() + 120
    sent = 0
    while sent < 1_000 and time.monotonic() < deadline:
        request = MIX[sent % len(MIX)]
        status, headers, _ = raw(stack, request)
        statuses[status] += 1
        if not headers.get("x-request-id"):
            missing[(request[:60], status)] += 1
        sent += 1
    assert sent >= 500, f"only {sent} requests in the time allowed"
    assert not missing, (missing, statuses)
