"""Log records of every process: JSON lines (python-json-logger) or readable text, each
with the request id of the request or task it belongs to, and never a secret.

Imported by Django's LOGGING, by gunicorn's config (deploy/gunicorn_conf.py) before
Django is set up, and by the Celery app, so it imports nothing of Django at module level.
"""

from __future__ import annotations

import logging
import logging.config
import re
from contextvars import ContextVar
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

# The id of the request (or of the request that queued the running task); None outside.
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# What must never reach a log line even if a careless message carries it: bearer
# credentials, token-bearing query parameters, JWTs and signed action tokens (both start
# with base64 JSON, "eyJ"), and password fields.
_SECRET_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b(bearer)\s+[^\s\"',;]+"), r"\1 [redacted]"),
    (
        re.compile(r"(?i)([?&;](?:token|access|refresh|access_token|password)=)[^&\s\"']*"),
        r"\1[redacted]",
    ),
    (re.compile(r"eyJ[A-Za-z0-9_\-]+[.:][A-Za-z0-9_\-.:]+"), "[redacted-token]"),
    (
        re.compile(
            r"(?i)([\"']?(?:password|action_?token|refresh|access)[\"']?\s*[:=]\s*)"
            r"[\"'][^\"']*[\"']"
        ),
        r"\1\"[redacted]\"",
    ),
)


def scrub(text: str) -> str:
    """`text` with every credential-shaped substring replaced."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RequestContextFilter(logging.Filter):
    """Give every record a `request_id`, and replace objects that would print secrets.

    Django's request loggers attach the HttpRequest itself (`extra={"request": ...}`),
    whose repr is the full path with its query string (so `?token=`): only the method and
    the path stay. Celery's task lines lose the task's arguments.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = request_id_var.get()
        request = getattr(record, "request", None)
        if request is not None and not isinstance(request, str):
            method = getattr(request, "method", "") or ""
            path = getattr(request, "path", "") or ""
            record.request = f"{method} {path}".strip()
        if hasattr(record, "scope"):  # an ASGI scope carries headers and the query string
            del record.scope
        data = getattr(record, "data", None)
        if isinstance(data, dict) and ("args" in data or "kwargs" in data):
            # Celery's task lines carry the task's arguments (addresses, payloads): the
            # task's name and id identify it well enough.
            record.data = {k: v for k, v in data.items() if k not in ("args", "kwargs")}
        return True


class GunicornAccessFilter(logging.Filter):
    """Turn gunicorn's access-log atoms into fields, keeping only safe ones.

    The atoms include the query string (`q`, `r`), the Referer and every request header;
    only the method, the path without query, the status, size, duration, the peer and the
    request id (read back from the response header) become fields of the record.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        atoms = record.args
        if not hasattr(atoms, "get"):
            return True
        get: Any = atoms.get  # type: ignore[union-attr]
        record.method = get("m")
        record.path = get("U")
        record.status = _int(get("s"))
        record.bytes = _int(get("B"))
        record.duration_ms = _int(get("M"))
        record.remote_addr = get("h")
        request_id = get("{x-request-id}o")
        record.request_id = request_id if request_id not in (None, "-") else None
        return True


class DaphneAccessLog:
    """daphne's access log as log records (daphne writes NCSA text to stdout itself).

    daphne builds its access logger after it has imported the ASGI application, so
    config/asgi.py puts this class in its place: same events, in the process's log
    format, and the path without its query string.
    """

    logger = logging.getLogger("daphne.requests")

    def __init__(self, stream: Any = None) -> None:
        pass

    def __call__(self, protocol: str, action: str, details: dict[str, Any]) -> None:
        # daphne's HTTP "path" is the raw URI, query string (and so ?token=) included.
        path = str(details.get("path") or "").split("?", 1)[0]
        fields: dict[str, Any] = {"protocol": protocol, "action": action, "path": path}
        fields["remote_addr"] = details.get("client")
        if protocol == "http":
            if action != "complete":
                return
            fields.update(
                method=details.get("method"),
                status=details.get("status"),
                bytes=details.get("size"),
            )
            self.logger.info(
                "%s %s %s", fields["method"], fields["path"], fields["status"], extra=fields
            )
        else:
            self.logger.info("websocket %s %s", action, fields["path"], extra=fields)


def install_daphne_access_log() -> None:
    """Under the daphne command, log its access lines through logging (see above)."""
    import sys

    cli = sys.modules.get("daphne.cli")
    if cli is not None:
        cli.AccessLogGenerator = DaphneAccessLog  # type: ignore[attr-defined]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class JsonLogFormatter(JsonFormatter):
    """python-json-logger's formatter with fixed field names, scrubbed of secrets."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s")
        kwargs.setdefault(
            "rename_fields", {"asctime": "time", "levelname": "level", "name": "logger"}
        )
        kwargs.setdefault("reserved_attrs", [*RESERVED_ATTRS, "taskName", "color_message"])
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        return scrub(super().format(record))


class TextLogFormatter(logging.Formatter):
    """Readable lines for a developer's terminal (`LOG_FORMAT=text`), scrubbed too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("fmt", "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        super().__init__(*args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return scrub(super().format(record))


def logging_config(
    *, fmt: str, level: str, loggers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A dictConfig of one stderr handler in `fmt` ("json" or "text") for the root logger."""
    formatter = "json" if fmt == "json" else "text"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_context": {"()": "core.logs.RequestContextFilter"}},
        "formatters": {
            "json": {"()": "core.logs.JsonLogFormatter"},
            "text": {"()": "core.logs.TextLogFormatter"},
        },
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": formatter,
                "filters": ["request_context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
        "loggers": loggers or {},
    }


def configure(config: dict[str, Any]) -> None:
    """LOGGING_CONFIG: apply `config`, and send Python warnings through it too, so they
    come out as log lines of the same format rather than raw text on stderr."""
    logging.config.dictConfig(config)
    logging.captureWarnings(True)
