"""The real stack as docker-compose.yml describes it: gunicorn and daphne behind nginx,
Celery worker, on the test database and Redis, driven over HTTP like a client would."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import httpx
import pytest

from deploy.stack import Stack, wait_http
from tests.factories import PASSWORD, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def stack(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    return start_stack(web=1, ws=1)


def fetch(url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    request = urllib.request.Request(url, data=data, headers=headers or {})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), json.loads(error.read())


def test_it_is_ready_through_nginx(stack: Stack) -> None:
    status, _, body = fetch(f"{stack.url}/readyz")
    assert status == 200, body
    assert body["checks"]["channel_layer"]["detail"] == "RedisPubSubChannelLayer"
    assert body["checks"]["database"]["detail"] == "postgresql"


def test_it_refuses_an_oversize_body_at_nginx_in_the_envelope(stack: Stack) -> None:
    status, _, body = fetch(
        f"{stack.url}/api/v1/auth/token/",
        data=b"{" + b" " * 70_000 + b"}",
        headers={"Content-Type": "application/json"},
    )
    assert status == 413
    assert body["error"]["code"] == "payload_too_large"


def test_it_answers_unknown_routes_in_the_envelope(stack: Stack) -> None:
    status, headers, body = fetch(f"{stack.url}/api/v1/no-such-thing/")
    assert status == 404
    assert headers["Content-Type"] == "application/json"
    assert body["error"]["code"] == "not_found"


def test_it_answers_503_in_the_envelope_when_every_app_server_is_down(stack: Stack) -> None:
    gunicorn = next(p for p in stack.processes if p.name.startswith("gunicorn"))
    gunicorn.stop()
    try:
        status, headers, body = fetch(f"{stack.url}/api/v1/actions/")
        assert status == 503
        assert body["error"]["code"] == "service_unavailable"
        assert headers["Retry-After"] == "5"
    finally:
        gunicorn.start()
        wait_http(f"{stack.url}/healthz", proc=gunicorn)


def test_it_aggregates_metrics_of_every_process(stack: Stack) -> None:
    fetch(f"{stack.url}/api/v1/no-such-thing/")
    request = urllib.request.Request(f"{stack.url}/metrics")  # noqa: S310
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        text = response.read().decode()
    assert 'route="unmatched",status="404"' in text


def test_it_logs_json_lines_with_the_request_id_it_returns(stack: Stack) -> None:
    import time
    import uuid
    from pathlib import Path

    sent = f"e2e-{uuid.uuid4().hex}"
    status, headers, _ = fetch(f"{stack.url}/api/v1/no-such-thing/", headers={"X-Request-ID": sent})
    assert status == 404
    request_id = headers["X-Request-ID"]
    # nginx makes the id (a client cannot choose its own) and the app returns it.
    assert request_id != sent
    assert len(request_id) == 32
    assert int(request_id, 16) >= 0
    # nginx's access line (buffered up to a second) carries the id, the status and the
    # upstream's time; gunicorn writes none of its own (deploy/gunicorn_conf.py).
    log = Path(stack.workdir) / "nginx-access.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        mine = [line for line in log.read_text().splitlines() if line.endswith(request_id)]
        if mine:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"no nginx access line with request id {request_id}")
    fields = mine[0].split()
    assert fields[1:4] == ['"GET', '/api/v1/no-such-thing/"', "404"], mine[0]
    assert float(fields[-2]) >= 0  # $upstream_response_time: gunicorn answered it
    gunicorn = Path(stack.workdir) / "gunicorn-0.log"
    assert '"gunicorn.access"' not in gunicorn.read_text()  # nginx's line is the access log


def test_staff_log_in_to_the_admin_through_nginx_on_its_own_port(stack: Stack) -> None:
    """nginx passes the Host with its port, so the admin's CSRF origin check matches the
    browser's Origin on a port other than 80 (make stack's 8080), with no setting."""
    UserFactory(username="ops", is_staff=True)
    with httpx.Client(base_url=stack.url, timeout=10) as browser:
        form = browser.get("/admin/login/?next=/admin/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        assert token, form.text[:500]
        answer = browser.post(
            "/admin/login/?next=/admin/",
            data={
                "csrfmiddlewaretoken": token.group(1),
                "username": "ops",
                "password": PASSWORD,
                "next": "/admin/",
            },
            headers={"Origin": stack.url, "Referer": f"{stack.url}/admin/login/"},
        )
    assert answer.status_code == 302, answer.text[:500]
    assert answer.headers["location"] == "/admin/"


def test_nginx_caches_anonymous_board_reads_for_a_second_and_never_with_credentials(
    stack: Stack,
) -> None:
    import time

    from scoreboard.services import ledger_award
    from tests.conftest import access_token_for

    alice = UserFactory(username="cached")
    ledger_award(user_id=alice.pk, delta=3, action_id="click")
    url = f"http://127.0.0.1:{stack.port}/api/v1/leaderboard/?limit=3"
    with httpx.Client(timeout=10) as client:
        first = client.get(url)
        second = client.get(url)
        assert first.status_code == second.status_code == 200
        assert second.headers["X-Cache-Status"] in ("HIT", "UPDATING")
        assert second.headers["X-Request-ID"] != first.headers["X-Request-ID"]
        assert second.headers["Cache-Control"] == "public, max-age=1"
        not_modified = client.get(url, headers={"If-None-Match": second.headers["ETag"]})
        assert not_modified.status_code == 304
        assert not_modified.content == b""
        token = {"Authorization": f"Bearer {access_token_for(alice)}"}
        ledger_award(user_id=alice.pk, delta=4, action_id="click")
        mine = client.get(url, headers=token)
        assert mine.headers["X-Cache-Status"] == "BYPASS"
        assert mine.headers["Cache-Control"] == "private, no-store"
        assert mine.json()["entries"][0]["score"] == 7  # fresh for the player who scored
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # anonymous: within about a second
            if client.get(url).json()["entries"][0]["score"] == 7:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the cached anonymous read never caught up")
