"""Scoreboard settings: one module, configured by the environment.

Unset variables give the embedded default (SQLite, in-memory channel layer, local-memory
cache, database ranking, eager Celery tasks); DATABASE_URL and REDIS_URL switch to the
real stack. `.env.example` documents every variable.
"""

from __future__ import annotations

import ipaddress
import os
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import environ
from django.core.exceptions import ImproperlyConfigured

from core.dbwait import BoundedConnection  # no models; connects its signal receiver
from core.logs import logging_config  # imports nothing of Django

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if env.bool("SCOREBOARD_READ_DOT_ENV", default=True) and (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

# ---------------------------------------------------------------------------------------
# Core
# ---------------------------------------------------------------------------------------
DEBUG = env.bool("DEBUG", default=False)

# Known placeholder values are refused like a missing secret outside DEBUG.
INSECURE_SECRET_KEYS = frozenset({"", "changeme", "change-me", "secret", "insecure", "dev"})
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY or SECRET_KEY in INSECURE_SECRET_KEYS or SECRET_KEY.startswith("django-insecure"):
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY must be set to a long random value when DEBUG is off: "
            "run `make install` once in the project root (it writes local secrets to .env), "
            "or set SECRET_KEY and JWT_SIGNING_KEY in the environment."
        )
    SECRET_KEY = "django-insecure-debug-only-scoreboard-key-not-for-production"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A CSRF failure under /api/ answers the error envelope (core.views.csrf_failure).
CSRF_FAILURE_VIEW = "core.views.csrf_failure"

INSTALLED_APPS = [
    "daphne",
    "config.apps.ScoreboardAdminConfig",  # django.contrib.admin, login throttled
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "corsheaders",
    "rest_framework",
    "rest_framework_simplejwt",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "core",
    "scoreboard",
    "accounts",
    "actions",
    "leaderboard",
    "fraud",
]

MIDDLEWARE = [
    # First, so that every response (probes, errors, 413s) carries X-Request-ID.
    "core.request_id.RequestIdMiddleware",
    "core.middleware.HealthCheckMiddleware",
    "core.middleware.APIHostMiddleware",
    "core.middleware.MetricsMiddleware",
    "core.middleware.RequestSizeLimitMiddleware",
    "core.db_router.ReplicaReadsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "core.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# The admin's messages live in its session: the default (cookie, then session) builds a
# cookie signer on every request, API requests included, which never have messages.
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

# Content-Security-Policy (django-csp) on every response: the live page and the admin load
# only this site's own scripts, styles and images, connect only back to it (its WebSocket
# included: CSP3 'self' covers ws: and wss: of the same host), and run no inline script.
# The API docs page widens style-src for Swagger UI's inline styles (config/urls.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the apps' static folders when `collectstatic` has not run (the
# embedded default); production images run collectstatic and serve compressed files.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

# ---------------------------------------------------------------------------------------
# Database
# ---------------------------------------------------------------------------------------
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
DB_IS_POSTGRES = DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
# Under ASGI (daphne) every sync view runs in a thread of its own, so persistent
# per-thread connections would pile up: a shared psycopg pool bounds them. Gunicorn's
# worker threads (a fixed number) keep one persistent connection each instead.
SERVER_ROLE = os.environ.get("SCOREBOARD_SERVER_ROLE", "wsgi")
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)
if DB_IS_POSTGRES and SERVER_ROLE == "asgi":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": env.float("DB_POOL_TIMEOUT", default=5.0),
        # Every wait of a pooled connection bounded too (core.dbwait).
        "connection_class": BoundedConnection,
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)
    # A health check is one more round trip (SELECT 1) on every request that uses the
    # database. Off: after PostgreSQL restarts, each worker's first query fails (503
    # service_unavailable, which clients retry) and Django drops that connection.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
# A PostgreSQL that stalls or drops packets: every wait bounded (docs/operations.md).
# The server cancels a statement, a lock wait or an idle open transaction; the kernel
# drops a connection whose packets go unanswered (keepalives, tcp_user_timeout); the
# client gives up on a server that answers nothing (DB_CLIENT_TIMEOUT_SECONDS).
DB_CONNECT_TIMEOUT = env.int("DB_CONNECT_TIMEOUT", default=3)
DB_STATEMENT_TIMEOUT_MS = env.int("DB_STATEMENT_TIMEOUT_MS", default=5000)
DB_LOCK_TIMEOUT_MS = env.int("DB_LOCK_TIMEOUT_MS", default=3000)
DB_IDLE_IN_TRANSACTION_TIMEOUT_MS = env.int("DB_IDLE_IN_TRANSACTION_TIMEOUT_MS", default=15000)
DB_KEEPALIVES_IDLE = env.int("DB_KEEPALIVES_IDLE", default=5)
DB_KEEPALIVES_INTERVAL = env.int("DB_KEEPALIVES_INTERVAL", default=2)
DB_KEEPALIVES_COUNT = env.int("DB_KEEPALIVES_COUNT", default=3)
DB_TCP_USER_TIMEOUT_MS = env.int("DB_TCP_USER_TIMEOUT_MS", default=6000)
# 0 turns the client's own bound off; the default outlasts the statement timeout.
DB_CLIENT_TIMEOUT_SECONDS = env.float(
    "DB_CLIENT_TIMEOUT_SECONDS", default=DB_STATEMENT_TIMEOUT_MS / 1000 + 1
)
# /readyz waits this long for PostgreSQL's answer before it reports the database down.
READINESS_DB_TIMEOUT_SECONDS = env.float("READINESS_DB_TIMEOUT_SECONDS", default=2.0)
if DB_IS_POSTGRES:
    _server_limits = " ".join(
        f"-c {name}={value}"
        for name, value in (
            ("statement_timeout", DB_STATEMENT_TIMEOUT_MS),
            ("lock_timeout", DB_LOCK_TIMEOUT_MS),
            ("idle_in_transaction_session_timeout", DB_IDLE_IN_TRANSACTION_TIMEOUT_MS),
        )
    )
    _options = DATABASES["default"].setdefault("OPTIONS", {})
    _options["options"] = f"{_options.get('options', '')} {_server_limits}".strip()
    for _name, _value in (
        ("connect_timeout", DB_CONNECT_TIMEOUT),
        ("keepalives", 1),
        ("keepalives_idle", DB_KEEPALIVES_IDLE),
        ("keepalives_interval", DB_KEEPALIVES_INTERVAL),
        ("keepalives_count", DB_KEEPALIVES_COUNT),
        ("tcp_user_timeout", DB_TCP_USER_TIMEOUT_MS),
    ):
        _options.setdefault(_name, _value)
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One writer at a time: wait for the lock instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    )

# A streaming read replica (PostgreSQL hot standby): reads that may lag a moment go there,
# writes and read-your-own-writes stay on the primary (core/db_router.py says which
# reads; docs/scaling.md). Unset: one database.
DATABASE_REPLICA_URL = env.str("DATABASE_REPLICA_URL", default="")
DATABASE_REPLICA_ROUTES = env.list(
    "DATABASE_REPLICA_ROUTES", default=["leaderboard", "leaderboard-user"]
)
DATABASE_ROUTERS = ["core.db_router.ReplicaRouter"]
if DATABASE_REPLICA_URL:
    if not DB_IS_POSTGRES:
        raise ImproperlyConfigured("DATABASE_REPLICA_URL needs a PostgreSQL DATABASE_URL")
    DATABASES["replica"] = {
        **env.db_url_config(DATABASE_REPLICA_URL),
        # The same connection handling as the primary's (pool under daphne).
        **{
            k: v
            for k, v in DATABASES["default"].items()
            if k in ("CONN_MAX_AGE", "CONN_HEALTH_CHECKS")
        },
        "OPTIONS": {**DATABASES["default"].get("OPTIONS", {})},
        # Tests read the replica as the primary: no second test database.
        "TEST": {"MIRROR": "default"},
    }

# Where pg_dump and pg_restore are (`backup` / `restore`); default: found on PATH.
PG_BIN_DIR = env.str("PG_BIN_DIR", default="")

# ---------------------------------------------------------------------------------------
# Redis: cache, rate limits, channel layer, Celery broker
# ---------------------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
REDIS_KEY_PREFIX = env.str("REDIS_KEY_PREFIX", default="scoreboard")
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.5)
# Every pool (core/redis_pool.py) holds at most REDIS_MAX_CONNECTIONS per process and
# makes a caller wait up to REDIS_POOL_TIMEOUT for a free one instead of failing it. After
# a timeout or connection error, each process treats Redis as down (every call fails at
# once, callers degrade) for REDIS_BREAKER_SECONDS, then lets one probe call through.
REDIS_MAX_CONNECTIONS = env.int("REDIS_MAX_CONNECTIONS", default=50)
REDIS_POOL_TIMEOUT = env.float("REDIS_POOL_TIMEOUT", default=1.0)
REDIS_BREAKER_SECONDS = env.float("REDIS_BREAKER_SECONDS", default=1.5)


def _host_ports(name: str, default_port: int) -> list[tuple[str, int]]:
    """The `host:port,host:port` list of variable `name` as (host, port) pairs."""
    pairs = []
    for item in env.list(name, default=[]):
        host, _, port = item.strip().rpartition(":") if ":" in item else (item, "", "")
        try:
            pairs.append((host.strip(), int(port or default_port)))
        except ValueError as exc:
            raise ImproperlyConfigured(f"{name}: {item!r} is not host:port") from exc
    return pairs


# Redis Sentinel: "host:port,host:port" of the sentinels and the name of the master they
# watch. Every Redis client (django-redis, channels-redis, the Celery broker) then asks
# the sentinels for the current master and follows a failover. REDIS_URL, if set, gives
# the database number and password (its host part is ignored); docs/scaling.md.
REDIS_SENTINELS = _host_ports("REDIS_SENTINELS", 26379)
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="mymaster")
if REDIS_SENTINELS:
    _url = urlparse(REDIS_URL or "redis:///0")
    _auth = f":{_url.password}@" if _url.password else ""
    # django-redis's Sentinel convention: the URL's host is the master's name.
    REDIS_URL = f"redis://{_auth}{REDIS_SENTINEL_MASTER}{_url.path or '/0'}"
EMBEDDED = not REDIS_URL

if REDIS_URL:
    _redis_options = {
        "SOCKET_CONNECT_TIMEOUT": REDIS_SOCKET_TIMEOUT,
        "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
        "CONNECTION_POOL_CLASS": "core.redis_pool.BlockingConnectionPool",
    }
    CACHES = {
        # The general cache may drop errors: a miss is always safe.
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {**_redis_options, "IGNORE_EXCEPTIONS": True},
        },
        # Rate limits and the ranking index must see failures to degrade on purpose.
        "strict": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": REDIS_KEY_PREFIX,
            "OPTIONS": {**_redis_options, "IGNORE_EXCEPTIONS": False},
        },
    }
    DJANGO_REDIS_LOG_IGNORED_EXCEPTIONS = True
    CHANNEL_LAYERS: dict[str, Any] = {
        "default": {
            "BACKEND": "channels_redis.pubsub.RedisPubSubChannelLayer",
            "CONFIG": {
                # channels-redis builds redis-py's default pool from these (only /readyz
                # uses the layer when Redis is configured): bounded, with the timeouts.
                "hosts": [
                    {
                        "address": REDIS_URL,
                        "max_connections": REDIS_MAX_CONNECTIONS,
                        "socket_timeout": REDIS_SOCKET_TIMEOUT,
                        "socket_connect_timeout": REDIS_SOCKET_TIMEOUT,
                    }
                ],
                "prefix": f"{REDIS_KEY_PREFIX}:asgi",
            },
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "strict": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "strict",
        },
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

if REDIS_SENTINELS:
    for _cache in CACHES.values():
        # The Sentinel factory needs its own pool class (a SentinelConnectionPool).
        _cache["OPTIONS"].pop("CONNECTION_POOL_CLASS", None)
        _cache["OPTIONS"].update(
            {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": REDIS_SENTINELS,
                "SENTINEL_KWARGS": {"socket_timeout": REDIS_SOCKET_TIMEOUT},
            }
        )
    _redis = urlparse(REDIS_URL)
    CHANNEL_LAYERS["default"]["CONFIG"]["hosts"] = [
        {
            "master_name": REDIS_SENTINEL_MASTER,
            "sentinels": REDIS_SENTINELS,
            "sentinel_kwargs": {"socket_timeout": REDIS_SOCKET_TIMEOUT},
            "db": int(_redis.path.lstrip("/") or 0),
            **({"password": _redis.password} if _redis.password else {}),
        }
    ]

# Atomic counters for rate limits (core.ratelimit) on the alias that raises.
RATELIMIT_USE_CACHE = "strict"

# ---------------------------------------------------------------------------------------
# Celery
# ---------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_TIMEOUT = 2
# acks_late: a task whose worker died unacknowledged goes back to the queue once its
# visibility timeout passes (the Redis transport's redelivery). Longer than any task runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_timeout": 2,
    "socket_connect_timeout": 2,
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # A publish that finds no connection tries once to open one, not again and again for
    # CELERY_BROKER_CONNECTION_TIMEOUT: a request must not wait for a stalled broker (the
    # publish retry policy below still retries once; the worker reconnects on its own).
    "max_retries": 0,
}
if REDIS_SENTINELS and not env.str("CELERY_BROKER_URL", default=""):
    # kombu's Sentinel transport: one sentinel:// URL per sentinel, the master by name.
    _db = urlparse(REDIS_URL).path or "/0"
    _auth = f":{urlparse(REDIS_URL).password}@" if urlparse(REDIS_URL).password else ""
    CELERY_BROKER_URL = ";".join(f"sentinel://{_auth}{h}:{p}{_db}" for h, p in REDIS_SENTINELS)
    CELERY_BROKER_TRANSPORT_OPTIONS["master_name"] = REDIS_SENTINEL_MASTER
    CELERY_BROKER_TRANSPORT_OPTIONS["sentinel_kwargs"] = {"socket_timeout": 2}
# A redis:// broker (not a sentinel:// one) publishes through the project's blocking
# pool, behind the breaker.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "core.redis_pool:BrokerTransport"
# A request that queues a task must not hang on a broker that is down: one quick retry,
# then the caller logs the failure and carries on (the ledger is already committed).
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
# One queue per key prefix, so deployments (and test runs) sharing a Redis never take
# each other's tasks.
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_TASK_DEFAULT_QUEUE", default="") or REDIS_KEY_PREFIX
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict[str, dict] = {}

# ---------------------------------------------------------------------------------------
# REST API
# ---------------------------------------------------------------------------------------
REST_FRAMEWORK: dict[str, Any] = {
    # A bearer token (apps), or the session of a browser page (the live page; DRF then
    # checks the CSRF token on every unsafe method).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.BearerAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParser"],
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "core.negotiation.JSONFirstNegotiation",
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append(
        "rest_framework.renderers.BrowsableAPIRenderer"
    )

SPECTACULAR_SETTINGS = {
    "TITLE": "Scoreboard API",
    "DESCRIPTION": "Authorised score updates, a ranked leaderboard and live updates.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI from the project's own static files: no CDN needed.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.schema.add_error_envelope",
    ],
}

# Request bodies over this size get 413 (checked from Content-Length before parsing).
REQUEST_MAX_BODY_BYTES = env.int("REQUEST_MAX_BODY_BYTES", default=64 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BODY_BYTES

CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"

# ---------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

JWT_SIGNING_KEY = env.str("JWT_SIGNING_KEY", default="")
if not JWT_SIGNING_KEY:
    if not DEBUG and not env.bool("JWT_SIGNING_KEY_FROM_SECRET", default=False):
        raise ImproperlyConfigured(
            "JWT_SIGNING_KEY must be set when DEBUG is off: run `make install` once in the "
            "project root (it writes local secrets to .env), or set it in the environment."
        )
    # DEBUG only (or explicitly allowed): a key of its own, derived from SECRET_KEY.
    from django.utils.crypto import salted_hmac

    JWT_SIGNING_KEY = salted_hmac("scoreboard.jwt", "signing-key", secret=SECRET_KEY).hexdigest()

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_ACCESS_TTL_SECONDS", default=900)),
    "REFRESH_TOKEN_LIFETIME": timedelta(seconds=env.int("JWT_REFRESH_TTL_SECONDS", default=86400)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": False,
    "ALGORITHM": "HS256",
    "SIGNING_KEY": JWT_SIGNING_KEY,
    "AUDIENCE": env.str("JWT_AUDIENCE", default="scoreboard-api"),
    "ISSUER": env.str("JWT_ISSUER", default="scoreboard"),
    "LEEWAY": 0,
    "USER_ID_FIELD": "id",
    "USER_ID_CLAIM": "user_id",
    "AUTH_HEADER_TYPES": ("Bearer",),
    "TOKEN_OBTAIN_SERIALIZER": "accounts.serializers.LoginSerializer",
}

# Authentication reads whether an account was banned or deactivated from a Redis copy of
# those users (accounts.state), rebuilt from PostgreSQL at least this often.
ACCOUNT_STATE_REFRESH_SECONDS = env.int("ACCOUNT_STATE_REFRESH_SECONDS", default=300)

# Failed logins allowed per username and per client IP (successful logins never count).
LOGIN_FAILURES_PER_USERNAME = env.str("LOGIN_FAILURES_PER_USERNAME", default="5/m")
LOGIN_FAILURES_PER_IP = env.str("LOGIN_FAILURES_PER_IP", default="30/m")
REGISTRATIONS_PER_IP = env.str("REGISTRATIONS_PER_IP", default="20/h")

# ---------------------------------------------------------------------------------------
# Product rules
# ---------------------------------------------------------------------------------------
LEADERBOARD_TOP_N = env.int("LEADERBOARD_TOP_N", default=10)
LEADERBOARD_BROADCAST_INTERVAL_MS = env.int("LEADERBOARD_BROADCAST_INTERVAL_MS", default=100)
LEADERBOARD_WS_REQUIRE_LOGIN = env.bool("LEADERBOARD_WS_REQUIRE_LOGIN", default=False)
LEADERBOARD_RECONCILE_SECONDS = env.float("LEADERBOARD_RECONCILE_SECONDS", default=5.0)
CELERY_BEAT_SCHEDULE["leaderboard-reconcile"] = {
    "task": "leaderboard.reconcile",
    "schedule": LEADERBOARD_RECONCILE_SECONDS,
}

# Boards and periods (docs/boards.md). A process re-reads the active boards at most this
# often (a board saved in this process is seen at once).
BOARDS_CACHE_SECONDS = env.float("BOARDS_CACHE_SECONDS", default=2.0)
BOARDS_MAX_PER_COMPLETION = env.int("BOARDS_MAX_PER_COMPLETION", default=8)
# A period is closed this long after its end at the earliest (clock skew between the
# machines that accept completions), and the closer runs this often: a period is closed
# within GRACE + EVERY (+ the close itself) of its end, under SPEC's 60 s.
BOARDS_CLOSE_GRACE_SECONDS = env.float("BOARDS_CLOSE_GRACE_SECONDS", default=2.0)
BOARDS_CLOSE_EVERY_SECONDS = env.float("BOARDS_CLOSE_EVERY_SECONDS", default=10.0)
# The close's own statement bound (a period of a million participants takes tens of
# seconds; a request's bound is DB_STATEMENT_TIMEOUT_MS).
BOARDS_CLOSE_STATEMENT_SECONDS = env.float("BOARDS_CLOSE_STATEMENT_SECONDS", default=300.0)
CELERY_BEAT_SCHEDULE["leaderboard-close-periods"] = {
    "task": "leaderboard.close_periods",
    "schedule": BOARDS_CLOSE_EVERY_SECONDS,
}

# Action tokens and completions.
ACTION_TOKEN_TTL_SECONDS = env.int("ACTION_TOKEN_TTL_SECONDS", default=600)
# The longest a process keeps an action type (changes reach it at once through Redis;
# this bounds a change Redis missed; 0: read every request).
ACTION_TYPE_CACHE_SECONDS = env.float("ACTION_TYPE_CACHE_SECONDS", default=5.0)
COMPLETION_RATE_PER_USER = env.str("COMPLETION_RATE_PER_USER", default="10/m")
COMPLETION_RATE_PER_IP = env.str("COMPLETION_RATE_PER_IP", default="300/m")
IDEMPOTENCY_TTL_SECONDS = env.int("IDEMPOTENCY_TTL_SECONDS", default=86400)
CELERY_BEAT_SCHEDULE["idempotency-expire"] = {
    "task": "actions.idempotency_expire",
    "schedule": 3600.0,
}
# A completion's audit record is queued after commit; a broker outage can lose it. This
# writes the missing ones from the completion rows (idempotent, on the task's own key).
# The bound (SPEC: within 2 minutes of the broker and a worker being back) is
# AGE + SECONDS + RUN_SECONDS = 15 + 15 + 30 = 60 s; docs/fraud.md has the arithmetic.
AUDIT_BACKFILL_SECONDS = env.float("AUDIT_BACKFILL_SECONDS", default=15.0)
AUDIT_BACKFILL_AGE_SECONDS = env.float("AUDIT_BACKFILL_AGE_SECONDS", default=15.0)
AUDIT_BACKFILL_BATCH = env.int("AUDIT_BACKFILL_BATCH", default=1000)
AUDIT_BACKFILL_RUN_SECONDS = env.float("AUDIT_BACKFILL_RUN_SECONDS", default=30.0)
# The cursor is moved back this much on each run, for completions that committed late
# (a transaction is bounded by the database timeouts above to far less).
AUDIT_BACKFILL_OVERLAP_SECONDS = env.float("AUDIT_BACKFILL_OVERLAP_SECONDS", default=300.0)
# With no cursor yet (a new deployment), how far back the first run looks.
AUDIT_BACKFILL_FIRST_DAYS = env.int("AUDIT_BACKFILL_FIRST_DAYS", default=2)
CELERY_BEAT_SCHEDULE["completion-audit-backfill"] = {
    "task": "actions.completion_audit_backfill",
    "schedule": AUDIT_BACKFILL_SECONDS,
}

# The completion audit trail: queued in Redis, written by Celery in batches (fraud.audit).
# A drain runs this long after the first record queued since the last one started, and
# the beat runs one every AUDIT_DRAIN_SECONDS in case a queued drain was lost.
AUDIT_DRAIN_DELAY_SECONDS = env.float("AUDIT_DRAIN_DELAY_SECONDS", default=1.0)
AUDIT_DRAIN_SECONDS = env.float("AUDIT_DRAIN_SECONDS", default=10.0)
CELERY_BEAT_SCHEDULE["fraud-audit-drain"] = {
    "task": "fraud.audit_drain",
    "schedule": AUDIT_DRAIN_SECONDS,
}

# Fraud: a completion whose risk score reaches the flag threshold is accepted and flagged;
# one that reaches the block threshold is refused with 403.
FRAUD_FLAG_THRESHOLD = env.float("FRAUD_FLAG_THRESHOLD", default=0.5)
FRAUD_BLOCK_THRESHOLD = env.float("FRAUD_BLOCK_THRESHOLD", default=0.9)


def _weights(name: str, defaults: dict[str, float]) -> dict[str, float]:
    """Default weights with "rule=weight,..." from the environment on top (the fraud app's
    system check refuses unknown rules and weights outside [0, 1])."""
    try:
        overrides = {key: float(value) for key, value in env.dict(name, default={}).items()}
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}: weights are numbers, like rule=0.5,other=0") from exc
    return {**defaults, **overrides}


# Weight of each live rule (fraud/rules.py) in the risk score, "name=weight,..." to
# override some; 0 turns a rule off. docs/fraud.md explains each rule.
FRAUD_RULE_WEIGHTS = {
    "request_frequency": 0.6,
    "score_jump": 0.4,
    "regular_timing": 1.0,
    "impossible_rate": 0.8,
    "device_change": 0.35,
    "new_account": 0.2,
    "duplicate_completion": 0.3,
    "ip_farm": 0.5,
    # Alone at full strength it flags (0.6 >= the flag threshold) and never blocks.
    "impossible_travel": 0.6,
}
FRAUD_RULE_WEIGHTS = _weights("FRAUD_RULE_WEIGHTS", FRAUD_RULE_WEIGHTS)
FRAUD_HISTORY_SIZE = env.int("FRAUD_HISTORY_SIZE", default=20)
FRAUD_HUMAN_MIN_SECONDS = env.float("FRAUD_HUMAN_MIN_SECONDS", default=2.0)
FRAUD_SCORE_JUMP_WINDOW_SECONDS = env.int("FRAUD_SCORE_JUMP_WINDOW_SECONDS", default=3600)
FRAUD_SCORE_JUMP_FLOOR = env.int("FRAUD_SCORE_JUMP_FLOOR", default=1000)
FRAUD_DEVICE_WINDOW_SECONDS = env.int("FRAUD_DEVICE_WINDOW_SECONDS", default=600)
FRAUD_NEW_ACCOUNT_SECONDS = env.int("FRAUD_NEW_ACCOUNT_SECONDS", default=86400)
FRAUD_DUPLICATE_SECONDS = env.float("FRAUD_DUPLICATE_SECONDS", default=2.0)
FRAUD_FARM_WINDOW_SECONDS = env.int("FRAUD_FARM_WINDOW_SECONDS", default=600)
FRAUD_FARM_ACCOUNTS = env.int("FRAUD_FARM_ACCOUNTS", default=8)
# Impossible travel: the places of two completions (GeoIP2 City database at GEOIP_PATH, a
# file or the directory holding GeoLite2-City.mmdb; empty: the rule is off) farther apart
# than FRAUD_TRAVEL_MIN_KM beyond both places' accuracy radii, covered faster than
# FRAUD_TRAVEL_MAX_KMH (an airliner). GEOIP_CACHE_SIZE: addresses kept per process.
GEOIP_PATH = env.str("GEOIP_PATH", default="")
GEOIP_CACHE_SIZE = env.int("GEOIP_CACHE_SIZE", default=4096)
FRAUD_TRAVEL_MAX_KMH = env.float("FRAUD_TRAVEL_MAX_KMH", default=1000.0)
FRAUD_TRAVEL_MIN_KM = env.float("FRAUD_TRAVEL_MIN_KM", default=500.0)
# The deeper review of a flagged user's history (Celery), and when it escalates them.
FRAUD_REVIEW_DAYS = env.int("FRAUD_REVIEW_DAYS", default=7)
FRAUD_REVIEW_WEIGHTS = {
    "hour_spread": 0.5,
    "interval_regularity": 0.8,
    "ip_diversity": 0.4,
    "score_growth": 0.5,
    "flag_history": 0.7,
}
FRAUD_REVIEW_WEIGHTS = _weights("FRAUD_REVIEW_WEIGHTS", FRAUD_REVIEW_WEIGHTS)
FRAUD_ESCALATE_THRESHOLD = env.float("FRAUD_ESCALATE_THRESHOLD", default=0.7)
# A flagged user's history is reviewed at most once a FRAUD_REVIEW_WINDOW_SECONDS window
# (60: a minute), in batches: the first flag or block of a user's window asks for the
# batch that runs when the current FRAUD_REVIEW_BATCH_SECONDS slot (5) ends, which reviews
# every user flagged since their last review (at most FRAUD_REVIEW_BATCH_MAX, 1000; the
# next batch or the sweep takes the rest). docs/fraud.md, "Reviews".
FRAUD_REVIEW_WINDOW_SECONDS = env.int("FRAUD_REVIEW_WINDOW_SECONDS", default=60)
FRAUD_REVIEW_BATCH_SECONDS = env.float("FRAUD_REVIEW_BATCH_SECONDS", default=5.0)
FRAUD_REVIEW_BATCH_MAX = env.int("FRAUD_REVIEW_BATCH_MAX", default=1000)
FRAUD_SWEEP_SECONDS = env.int("FRAUD_SWEEP_SECONDS", default=900)
FRAUD_SWEEP_LOOKBACK = timedelta(seconds=FRAUD_SWEEP_SECONDS * 4)
CELERY_BEAT_SCHEDULE["fraud-review-sweep"] = {
    "task": "fraud.review_sweep",
    "schedule": float(FRAUD_SWEEP_SECONDS),
}
# Alerts to the security team (ADMINS by mail, and the webhook if set): at most one
# summary per window.
FRAUD_ALERT_WINDOW_SECONDS = env.int("FRAUD_ALERT_WINDOW_SECONDS", default=300)
FRAUD_ALERT_WEBHOOK_URL = env.str("FRAUD_ALERT_WEBHOOK_URL", default="")
FRAUD_ALERT_WEBHOOK_TIMEOUT = env.float("FRAUD_ALERT_WEBHOOK_TIMEOUT", default=3.0)
CELERY_BEAT_SCHEDULE["fraud-alerts"] = {
    "task": "fraud.alerts_send",
    "schedule": FRAUD_ALERT_WINDOW_SECONDS / 2,
}

# Mail (fraud alerts go to ADMINS): "Name <address>,..." and an EMAIL_URL such as
# smtp+tls://user:password@host:587 (default: printed to the console).
ADMINS = [
    (address.split("<")[0].strip() or address, address.split("<")[-1].rstrip(">").strip())
    for address in env.list("ADMINS", default=[])
]
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST") or "localhost"
EMAIL_PORT = _email.get("EMAIL_PORT") or 25
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER") or ""
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD") or ""
EMAIL_USE_TLS = bool(_email.get("EMAIL_USE_TLS"))
EMAIL_USE_SSL = bool(_email.get("EMAIL_USE_SSL"))
EMAIL_TIMEOUT = 10
SERVER_EMAIL = env.str("SERVER_EMAIL", default="scoreboard@localhost")
DEFAULT_FROM_EMAIL = SERVER_EMAIL
EMAIL_SUBJECT_PREFIX = "[Scoreboard] "

# ---------------------------------------------------------------------------------------
# Security
# ---------------------------------------------------------------------------------------
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = SECURE_HSTS_SECONDS > 0
SESSION_COOKIE_SECURE = env.bool("SECURE_COOKIES", default=False)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
# Number of trusted proxies in front of the app (nginx: 1): X-Forwarded-For is read from
# the right by that many hops, so a client cannot forge its own IP.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# /metrics answers clients in these networks (the client IP as core.http reads it,
# so behind nginx the scraper's own address), or any client sending
# `Authorization: Bearer <METRICS_TOKEN>`. Everyone else gets 403 (401 for a bad token).
METRICS_ALLOWED_NETWORKS = env.list("METRICS_ALLOWED_NETWORKS", default=["127.0.0.0/8", "::1/128"])
try:
    METRICS_NETWORKS = [ipaddress.ip_network(n, strict=False) for n in METRICS_ALLOWED_NETWORKS]
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {exc}") from exc
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# ---------------------------------------------------------------------------------------
# Logging
# ---------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
# json: one JSON object per line on stderr (production); text: readable lines (`make run`).
LOG_FORMAT = env.str("LOG_FORMAT", default="json").lower()
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOGGING_CONFIG = "core.logs.configure"
LOGGING = logging_config(
    fmt=LOG_FORMAT,
    level=LOG_LEVEL,
    loggers={
        "django.db.backends": {"level": "INFO"},
        # Django logs a WARNING line for every 4xx. Each one is a client's mistake
        # answered with its error code; the access log (nginx in the stack, the server's
        # own in the embedded default) records its status and request id, and /metrics
        # counts it by route and status. The line cost 100-150 us of a refused request's
        # 370-530 us of CPU, paid most by floods of refusals (bad tokens, a rate-limited
        # client, a blocked farm): what an attack costs us. 5xx stay logged, with their
        # traceback.
        "django.request": {"level": "ERROR"},
        # daphne logs the full request path, query string (and so ?token=) included.
        "daphne.access": {"level": "WARNING"},
    },
)
