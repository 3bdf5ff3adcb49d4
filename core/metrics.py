"""Prometheus metrics of the service, served at /metrics.

Under gunicorn and daphne several processes serve at once: when PROMETHEUS_MULTIPROC_DIR
is set (deploy/gunicorn_conf.py, deploy.stack, docker-compose.yml) each process writes its
samples there and /metrics aggregates them.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as _multiprocess

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

http_request_duration = Histogram(
    "scoreboard_http_request_duration_seconds",
    "HTTP request latency by route, method and status.",
    ["route", "method", "status"],
    buckets=LATENCY_BUCKETS,
)
db_query_duration = Histogram(
    "scoreboard_db_query_duration_seconds",
    "Database query time.",
    ["vendor"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
)
completions = Counter(
    "scoreboard_completions_total",
    "Completion attempts by outcome (accepted, or the rejection's error code).",
    ["outcome"],
)
fraud_decisions = Counter(
    "scoreboard_fraud_decisions_total",
    "Completions flagged or blocked by the fraud rules.",
    ["decision"],
)
websocket_connections = Gauge(
    "scoreboard_websocket_connections",
    "Open WebSocket connections.",
    multiprocess_mode="livesum",
)
websocket_opens = Counter(
    "scoreboard_websocket_opens_total",
    "WebSocket connections accepted.",
)
websocket_closes = Counter(
    "scoreboard_websocket_closes_total",
    "WebSocket connections closed, by who closed them (client or server) and code.",
    ["by", "code"],
)
broadcast_lag = Histogram(
    "scoreboard_broadcast_lag_seconds",
    "Time from a score change's commit to its leaderboard push.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
)
leaderboard_cache = Counter(
    "scoreboard_leaderboard_cache_total",
    "Leaderboard reads answered from the Redis index (hit) or PostgreSQL (miss).",
    ["result"],
)
backing_service_errors = Counter(
    "scoreboard_backing_service_errors_total",
    "Failed calls to a backing service that the service degraded around.",
    ["service"],
)
login_lockouts = Counter(
    "scoreboard_login_lockouts_total",
    "Failed logins that spent a login budget (a lockout starts), by budget (username or "
    "ip) and whether the account of that username is staff.",
    ["scope", "staff"],
)
admin_logins = Counter(
    "scoreboard_admin_login_attempts_total",
    "Logins at the admin's form by outcome (succeeded, failed, refused, throttled).",
    ["outcome"],
)
redis_breaker_trips = Counter(
    "scoreboard_redis_breaker_trips_total",
    "Times a process began treating Redis as down after a timeout or connection error.",
)
redis_short_circuits = Counter(
    "scoreboard_redis_short_circuits_total",
    "Redis calls refused at once, without trying, while Redis was treated as down.",
)
redis_latency = Histogram(
    "scoreboard_redis_latency_seconds",
    "Latency of Redis calls measured by the readiness check.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5),
)
db_pool_connections = Gauge(
    "scoreboard_db_pool_connections",
    "Database connections in use and the pool's size, per process.",
    ["state"],
    multiprocess_mode="livesum",
)


def render() -> tuple[bytes, str]:
    """The exposition text of every metric of every process of this instance."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        _multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
