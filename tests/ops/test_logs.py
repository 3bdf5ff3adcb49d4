"""Log lines: JSON (python-json-logger) with the request id, or text; never a secret."""

from __future__ import annotations

import copy
import io
import json
import logging
import logging.config

import pytest
from django.test import Client, RequestFactory

from core.logs import logging_config, request_id_var, scrub

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoiMSJ9.c2lnbmF0dXJl"


@pytest.fixture
def captured() -> io.StringIO:
    """The project's LOGGING with its handler writing to a buffer, restored afterwards."""
    from django.conf import settings

    stream = io.StringIO()
    config = logging_config(fmt="json", level="INFO")
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream
    logging.config.dictConfig(settings.LOGGING)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_it_writes_one_json_object_per_line_with_the_request_id(captured: io.StringIO) -> None:
    token = request_id_var.set("req-abcdef0123")
    try:
        logging.getLogger("scoreboard.x").warning("index update for %s failed", "u1")
    finally:
        request_id_var.reset(token)
    (line,) = lines(captured)
    assert line["level"] == "WARNING"
    assert line["logger"] == "scoreboard.x"
    assert line["message"] == "index update for u1 failed"
    assert line["request_id"] == "req-abcdef0123"
    assert "time" in line


@pytest.fixture
def served() -> io.StringIO:
    """The project's own LOGGING (settings.LOGGING), its handler writing to a buffer."""
    from django.conf import settings

    stream = io.StringIO()
    config = copy.deepcopy(settings.LOGGING)
    config["handlers"]["console"]["stream"] = stream
    logging.config.dictConfig(config)
    yield stream
    logging.config.dictConfig(settings.LOGGING)


@pytest.mark.django_db
@pytest.mark.urls("tests.core.urls")
def test_a_refused_request_writes_no_line_and_a_server_error_does(served: io.StringIO) -> None:
    client = Client(raise_request_exception=False)
    refused = [
        client.get("/api/v1/leaderboard/users/not-a-user/"),
        client.get("/api/v1/me/", HTTP_AUTHORIZATION="Bearer not-a-token"),
        client.get("/api/v1/no-such-thing/"),
    ]
    assert [r.status_code for r in refused] == [404, 401, 404]
    assert [line for line in lines(served) if line["logger"] == "django.request"] == []
    crashed = client.get("/t/crash/")
    assert crashed.status_code == 500
    (line,) = [line for line in lines(served) if line["logger"] == "django.request"]
    assert line["level"] == "ERROR"
    assert line["request_id"] == crashed["X-Request-ID"]
    assert "Traceback" in line.get("exc_info", "")


def test_it_logs_djangos_request_object_as_method_and_path_only(captured: io.StringIO) -> None:
    request = RequestFactory().get("/ws/leaderboard/", {"token": "s3cr3t-query-token"})
    logging.getLogger("django.request").error(
        "Internal Server Error: %s", request.path, extra={"status_code": 500, "request": request}
    )
    text = captured.getvalue()
    assert "s3cr3t-query-token" not in text
    assert lines(captured)[0]["request"] == "GET /ws/leaderboard/"


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("GET /ws/leaderboard/?token=qwerty123&x=1", "qwerty123"),
        (f"decoded {JWT} here", JWT),
        ("action token eyJhIjoxfQ:1tQ2x3:sig-nature_x", "eyJhIjoxfQ:1tQ2x3:sig-nature_x"),
        ('{"username": "alice", "password": "hunter2-secret"}', "hunter2-secret"),
    ],
)
def test_it_scrubs_credentials_from_any_line(raw: str, secret: str) -> None:
    assert secret not in scrub(raw)


def test_it_scrubs_what_a_careless_message_carries(captured: io.StringIO) -> None:
    logging.getLogger("scoreboard.x").info("got header Bearer %s", JWT)
    assert JWT not in captured.getvalue()


def test_text_format_is_readable_and_carries_the_id() -> None:
    stream = io.StringIO()
    config = logging_config(fmt="text", level="INFO")
    from core.logs import RequestContextFilter, TextLogFormatter

    handler = logging.StreamHandler(stream)
    handler.setFormatter(TextLogFormatter())
    handler.addFilter(RequestContextFilter())
    record = logging.LogRecord(
        "scoreboard.x", logging.INFO, __file__, 1, "hello %s", ("you",), None
    )
    token = request_id_var.set("req-text-000001")
    try:
        handler.handle(record)
    finally:
        request_id_var.reset(token)
    assert config["handlers"]["console"]["formatter"] == "text"
    assert stream.getvalue().rstrip().endswith("[req-text-000001] hello you")


def test_gunicorn_access_lines_keep_only_safe_fields() -> None:
    from core.logs import GunicornAccessFilter, JsonLogFormatter

    atoms = {
        "h": "127.0.0.1",
        "m": "GET",
        "U": "/api/v1/leaderboard/",
        "q": "token=leaked-query",
        "r": "GET /api/v1/leaderboard/?token=leaked-query HTTP/1.1",
        "s": "200",
        "B": "42",
        "M": "3",
        "{x-request-id}o": "req-access-00001",
        "{authorization}i": "Bearer leaked-header",
    }
    record = logging.LogRecord(
        "gunicorn.access", logging.INFO, __file__, 1, '%(h)s "%(m)s %(U)s" %(s)s', (), None
    )
    record.args = atoms
    GunicornAccessFilter().filter(record)
    line = json.loads(JsonLogFormatter().format(record))
    assert "leaked" not in json.dumps(line)
    assert line["request_id"] == "req-access-00001"
    assert line["path"] == "/api/v1/leaderboard/"
    assert line["status"] == 200


def test_settings_refuse_an_unknown_log_format() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "LOG_FORMAT": "xml", "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "LOG_FORMAT" in result.stderr


def test_daphnes_access_lines_become_records_without_the_query_string(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from core.logs import DaphneAccessLog

    log = DaphneAccessLog()
    with caplog.at_level(logging.INFO, logger="daphne.requests"):
        log(
            "http",
            "complete",
            {
                "path": "/me/?token=s3cret",
                "status": 200,
                "method": "GET",
                "client": "127.0.0.1:5000",
                "size": 10,
            },
        )
        log("websocket", "connected", {"path": "/ws/leaderboard/", "client": "127.0.0.1:5001"})
    first, second = caplog.records
    assert first.path == "/me/"
    assert "s3cret" not in caplog.text
    assert second.action == "connected"


def test_celery_task_lines_lose_the_tasks_arguments(captured: io.StringIO) -> None:
    logging.getLogger("celery.app.trace").info(
        "Task %(name)s succeeded",
        {"name": "fraud.completion_audit"},
        extra={"data": {"id": "t1", "name": "x", "args": "('a',)", "kwargs": "{'ip': '10.9.8.7'}"}},
    )
    (line,) = lines(captured)
    assert line["data"] == {"id": "t1", "name": "x"}
    assert "10.9.8.7" not in captured.getvalue()
