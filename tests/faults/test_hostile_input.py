"""Hostile input to every operation of the OpenAPI schema (/api/schema/), deterministic:
bodies that are huge, deeply nested, not JSON, not UTF-8, with NaN or a key twice, path
parameters no route matches and query strings no client should send. Never a 5xx, and
every error in the envelope (SPEC.md, Conventions).

The schemathesis run (test_fuzz_api.py) explores valid-looking requests; this walks the
cases it does not generate, each against every operation the schema lists, so a new
endpoint is covered without a line here.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.test import Client
from django.utils import timezone

from leaderboard.boards import board_save
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.quickfaults, pytest.mark.django_db]

schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())
OPERATIONS = [result.ok() for result in schema.get_all_operations()]
WRITES = [op for op in OPERATIONS if op.method.upper() in ("POST", "PUT", "PATCH", "DELETE")]
READS = [op for op in OPERATIONS if op.method.upper() == "GET"]
JSON_BODIES = [op for op in WRITES if any(b.media_type == "application/json" for b in op.body)]

JSON = "application/json"
# (name, raw body, content type): the bodies of issue 19's sweep, and their neighbours.
HOSTILE_BODIES: list[tuple[str, bytes, str]] = [
    ("arrays-20000-deep", b"[" * 20_000 + b"]" * 20_000, JSON),
    ("objects-10000-deep", b'{"a":' * 10_000 + b"1" + b"}" * 10_000, JSON),
    ("arrays-33-deep", b"[" * 33 + b"]" * 33, JSON),
    ("deep-in-a-field", b'{"refresh":' + b"[" * 40 + b"]" * 40 + b"}", JSON),
    ("unclosed-arrays", b"[" * 5_000, JSON),
    ("huge", json.dumps({"pad": "x" * 70_000}).encode(), JSON),
    ("not-json", b"hello, world", JSON),
    ("truncated", b'{"actionId": "click",', JSON),
    ("empty-object", b"{}", JSON),
    ("a-list", b"[1, 2, 3]", JSON),
    ("a-string", b'"refresh"', JSON),
    ("null", b"null", JSON),
    ("not-utf8", b'{"username": "\xff\xfe\xfd", "refresh": "\xc3\x28"}', JSON),
    ("utf16-bom", '{"refresh": "x"}'.encode("utf-16"), JSON),
    ("nan", b'{"actionId": NaN, "refresh": NaN, "timestamp": NaN}', JSON),
    ("infinity", b'{"timestamp": -Infinity, "refresh": Infinity}', JSON),
    ("overflowing-float", b'{"timestamp": 1e999, "refresh": 1e999}', JSON),
    ("5000-digit-integer", b'{"timestamp": ' + b"9" * 5_000 + b"}", JSON),
    ("duplicate-keys", b'{"refresh": "a", "refresh": "b", "actionId": "x", "actionId": "y"}', JSON),
    ("nul-bytes", b'{"username": "a\\u0000b", "refresh": "\\u0000"}', JSON),
    ("lone-surrogate", b'{"username": "\\ud800", "refresh": "\\udfff"}', JSON),
    ("unknown-charset", b'{"refresh": "x"}', "application/json; charset=no-such-charset"),
    ("plain-text", b"refresh=x", "text/plain"),
    ("form", b"refresh=x&actionId=click", "application/x-www-form-urlencoded"),
    ("broken-multipart", b"--x\r\nContent-Disposition: form-data\r\n\r\n", "multipart/form-data"),
]
# Values for a path parameter that no route accepts, or that name nothing.
HOSTILE_SEGMENTS = [
    "PR-TAP",
    "%00",
    "a" * 300,
    "..%2f..%2f",
    "x%20",
    "%F0%9F%98%80",
    "%27%20OR%201%3D1%20--",
    "%ff%fe",
]
HOSTILE_QUERIES = [
    "limit=NaN&offset=Infinity&radius=NaN",
    "limit=1e999&offset=-1&radius=-5",
    "limit=99999999999999999999999999&offset=99999999999999999999999999",
    "limit=%00&offset=%ff&radius=%F0%9F%98%80",
    "limit=1&limit=2&offset[]=3&radius[x]=1",
    "limit=" + "9" * 5_000,
    "q=" + "x" * 8_000,
]


def envelope(response: Any) -> dict[str, Any]:
    assert response["Content-Type"].startswith("application/json"), response.content[:200]
    body = json.loads(response.content)
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "details"}, body
    assert isinstance(body["error"]["code"], str)
    assert body["error"]["code"]
    return body["error"]


def assert_answered(response: Any) -> None:
    """Not a server error, and any error in the envelope."""
    assert response.status_code < 500, response.content[:300]
    if response.status_code >= 400:
        envelope(response)


@pytest.fixture
def player(db) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A player with an action type to start, and a client that checks CSRF as browsers
    and servers do (Django's test client skips the check unless told)."""
    ActionTypeFactory(id="click", reward=5)
    user = UserFactory(username="hostile")
    board_save(slug="daily", title="Today", period="day")
    return {
        "client": Client(enforce_csrf_checks=True, raise_request_exception=False),
        "auth": {"HTTP_AUTHORIZATION": f"Bearer {access_token_for(user)}"},
        "params": {
            "id": "click",
            "user_id": str(user.pk),
            "session_id": "all",
            "slug": "daily",
            "key": timezone.now().date().isoformat(),
        },
    }


def url_of(operation: Any, params: dict[str, str]) -> str:
    return operation.path.format(**params)


@pytest.mark.parametrize("operation", WRITES, ids=[f"{op.method} {op.path}" for op in WRITES])
def test_it_never_fails_on_a_hostile_body(operation: Any, player: dict[str, Any]) -> None:
    for name, body, content_type in HOSTILE_BODIES:
        response = player["client"].generic(
            operation.method.upper(),
            url_of(operation, player["params"]),
            data=body,
            content_type=content_type,
            **player["auth"],
        )
        assert response.status_code < 500, (name, response.content[:300])
        assert_answered(response)


@pytest.mark.parametrize(
    ("name", "body"),
    [(n, b) for n, b, t in HOSTILE_BODIES if t == JSON and n != "huge"],
    ids=[n for n, _, t in HOSTILE_BODIES if t == JSON and n != "huge"],
)
@pytest.mark.parametrize("operation", JSON_BODIES, ids=[op.path for op in JSON_BODIES])
def test_it_answers_400_to_a_json_body_it_cannot_read(
    operation: Any, name: str, body: bytes, player: dict[str, Any]
) -> None:
    response = player["client"].post(
        url_of(operation, player["params"]), data=body, content_type=JSON, **player["auth"]
    )
    assert response.status_code == 400, response.content[:300]
    error = envelope(response)
    unreadable = ("deep", "unclosed", "not-", "truncated", "nan", "infinity", "overflowing",
                  "digit", "duplicate", "utf16")  # fmt: skip
    if any(word in name for word in unreadable):
        assert error["code"] == "malformed_request", error
    else:
        assert error["code"] == "invalid", error


@pytest.mark.parametrize("operation", JSON_BODIES, ids=[op.path for op in JSON_BODIES])
def test_it_answers_413_to_a_body_over_the_limit(operation: Any, player: dict[str, Any]) -> None:
    response = player["client"].post(
        url_of(operation, player["params"]),
        data=json.dumps({"pad": "x" * 70_000}),
        content_type=JSON,
        **player["auth"],
    )
    assert response.status_code == 413
    assert envelope(response)["code"] == "payload_too_large"


def _with_segment(operation: Any, segment: str) -> str | None:
    names = [p.name for p in operation.iter_parameters() if p.location == "path"]
    if not names:
        return None
    return operation.path.format(**dict.fromkeys(names, segment))


SEGMENTED = [op for op in OPERATIONS if "{" in op.path]


@pytest.mark.parametrize("operation", SEGMENTED, ids=[f"{op.method} {op.path}" for op in SEGMENTED])
def test_it_answers_a_hostile_path_parameter_in_the_envelope(
    operation: Any, player: dict[str, Any]
) -> None:
    for segment in HOSTILE_SEGMENTS:
        path = _with_segment(operation, segment)
        assert path is not None
        response = player["client"].generic(
            operation.method.upper(), path, data=b"{}", content_type=JSON, **player["auth"]
        )
        # A staff-only operation refuses a player before it looks anything up.
        allowed = (400, 403, 404) if operation.path.endswith("standings.csv") else (400, 404)
        assert response.status_code in allowed, (segment, response.content[:300])
        assert_answered(response)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/actions/PR-TAP/start/",
        "/api/v1/actions/%00/start/",
        f"/api/v1/actions/{'a' * 300}/start/",
        "/api/v1/actions/..%2f..%2f/start/",
        "/api/v1/actions/click%20/start/",
        "/api/v1/actions/%F0%9F%98%80/start/",
        "/api/v1/actions/%27%20OR%201%3D1%20--/start/",
        "/api/v1/no-such-thing/",
        "/api/v2/actions/complete/",
    ],
)
def test_it_answers_404_not_found_to_any_unrouted_api_path(
    path: str, player: dict[str, Any]
) -> None:
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        response = player["client"].generic(
            method, path, data=b"{}", content_type=JSON, **player["auth"]
        )
        assert response.status_code == 404, (method, response.content[:300])
        if method != "HEAD":
            assert envelope(response)["code"] == "not_found"


@pytest.mark.parametrize("operation", READS, ids=[op.path for op in READS])
def test_it_never_fails_on_a_hostile_query_string(operation: Any, player: dict[str, Any]) -> None:
    for query in HOSTILE_QUERIES:
        response = player["client"].get(
            f"{url_of(operation, player['params'])}?{query}", **player["auth"]
        )
        assert response.status_code < 500, (query, response.content[:300])
        assert_answered(response)
