"""gunicorn for the REST API.

Measured on 2 cores with `python -m bench --only read,write` (bench/README.md): 2 gthread
workers of 4 threads served the top-10 board at 343 req/s against 162 for 2 sync workers
and 242 for 4 sync workers, with completions equal (about 20/s each). A sync worker closes
nginx's connection after every response and sleeps through every database and Redis
round trip; threads overlap those waits and keep nginx's upstream connections alive.
"""

import os
from typing import Any

from gunicorn import glogging

from core.logs import logging_config

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
worker_class = os.environ.get("GUNICORN_WORKER_CLASS", "gthread")
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 20
# nginx keeps its upstream connections for 60 s (keepalive_timeout, set in its config);
# gunicorn must keep them longer, or it closes one just as nginx sends a request on it,
# and nginx answers that request 502 (a POST is never retried on another connection).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))
# A worker is replaced after this many requests (a guard against slow leaks). At the
# rates measured here (1,500 /healthz a second) 5,000 recycled each worker every few
# seconds, and each recycle halved the capacity for about a second.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "200000"))
max_requests_jitter = max_requests // 10
# Django is imported once, in the master: a recycled (or crashed) worker is a fork, not
# six seconds of imports on a loaded core while its share of the requests waits.
preload_app = os.environ.get("GUNICORN_PRELOAD", "1") == "1"
# nginx logs every request, with its request id, status and upstream time, so gunicorn
# writes no access line of its own by default (a line a request is CPU on the worker
# that serves it). GUNICORN_ACCESS_LOG=1 turns it on, for gunicorn served without nginx.
ACCESS_LOG = os.environ.get("GUNICORN_ACCESS_LOG", "0") == "1"
accesslog = "-" if ACCESS_LOG else None


class Logger(glogging.Logger):
    """gunicorn's logger, writing access lines only with GUNICORN_ACCESS_LOG=1 (with a
    `logconfig_dict`, below, gunicorn would write them whatever `accesslog` says)."""

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        if ACCESS_LOG:
            super().access(resp, req, environ, request_time)


logger_class = Logger
# No query string in access logs: tokens must never be written to a log. In JSON the
# fields come from core.logs.GunicornAccessFilter, which keeps the same safe atoms.
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms %({x-request-id}o)s'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# gunicorn's own logs (errors and access) on stderr in the format of the app's (LOG_FORMAT).
_handler = {
    "class": "logging.StreamHandler",
    "stream": "ext://sys.stderr",
    "formatter": "json" if os.environ.get("LOG_FORMAT", "json").lower() == "json" else "text",
}
logconfig_dict = logging_config(
    fmt=os.environ.get("LOG_FORMAT", "json").lower(),
    level=os.environ.get("LOG_LEVEL", "INFO").upper(),
)
logconfig_dict["filters"]["gunicorn_access"] = {"()": "core.logs.GunicornAccessFilter"}
logconfig_dict["handlers"]["gunicorn_error"] = {**_handler, "filters": ["request_context"]}
logconfig_dict["handlers"]["gunicorn_access"] = {**_handler, "filters": ["gunicorn_access"]}
logconfig_dict["loggers"] = {
    "gunicorn.error": {"handlers": ["gunicorn_error"], "level": "INFO", "propagate": False},
    "gunicorn.access": {"handlers": ["gunicorn_access"], "level": "INFO", "propagate": False},
}


def child_exit(server: Any, worker: Any) -> None:
    """Drop a dead worker's live gauges from the shared metrics directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
