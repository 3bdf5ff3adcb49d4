"""Loading the application imports what a request would (config/warmup.py): a
process's first completion and board read import nothing of the project, and loading
opens no connection, so gunicorn's master can fork its workers from it."""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from tests.e2e.conftest import test_database_url as database_url
from tests.support import run_django

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = r"""
import json, os, sys
from io import BytesIO

def sockets():
    # TCP connections of this process (PostgreSQL, Redis, the broker), by socket inode.
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            mine.add(target[8:-1])
    tcp = [line.split()[9] for name in ("tcp", "tcp6")
           for line in open(f"/proc/self/net/{name}").read().splitlines()[1:]]
    return len(mine & set(tcp))

import config.wsgi
out = {"connections_after_load": sockets()}
loaded = set(sys.modules)

from django.test.client import RequestFactory
from accounts.models import User
from accounts.tokens import access_token_for
from actions.models import ActionType
ActionType.objects.create(id="click", name="Click", reward=5)
user = User.objects.create_user(username="first", email="f@example.com", password=None)
token = access_token_for(user)
imported_by_setup = set(sys.modules) - loaded

def call(method, path, body=b"", query=""):
    environ = RequestFactory()._base_environ(
        PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=method, HTTP_HOST="127.0.0.1",
        HTTP_AUTHORIZATION=f"Bearer {token}", CONTENT_TYPE="application/json",
        CONTENT_LENGTH=str(len(body)), REMOTE_ADDR="127.0.0.1")
    environ["wsgi.input"] = BytesIO(body)
    status = []
    response = config.wsgi.application(environ, lambda s, h, e=None: status.append(s))
    content = b"".join(response)
    return status[0], content

before = set(sys.modules)
started = json.loads(call("POST", "/api/v1/actions/click/start/")[1])
body = json.dumps({"actionId": "click", "actionToken": started["actionToken"]}).encode()
out["complete"] = call("POST", "/api/v1/actions/complete/", body)[0]
out["board"] = call("GET", "/api/v1/leaderboard/", query="limit=1")[0]
project = ("config", "scoreboard", "accounts", "actions", "leaderboard", "fraud")
out["imported_by_requests"] = sorted(
    m for m in set(sys.modules) - before - imported_by_setup if m.split(".")[0] in project
)
print(json.dumps(out))
"""


def test_the_first_requests_of_a_process_import_nothing_of_the_project() -> None:
    done = run_django(
        ["-c", SCRIPT],
        {
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "REDIS_KEY_PREFIX": settings.REDIS_KEY_PREFIX,
            "CELERY_TASK_ALWAYS_EAGER": "1",
            "SECRET_KEY": "x" * 50,
            "JWT_SIGNING_KEY": settings.JWT_SIGNING_KEY,
            "ALLOWED_HOSTS": "127.0.0.1",
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["connections_after_load"] == 0
    assert out["complete"] == "200 OK"
    assert out["board"] == "200 OK"
    assert out["imported_by_requests"] == []


FROZEN = r"""
import gc, importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps({"frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))
"""


@pytest.mark.parametrize("entry", ["config.wsgi", "config.asgi"])
def test_loading_leaves_what_was_loaded_out_of_the_collectors_passes(entry: str) -> None:
    """A full pass of the collector walks every tracked object holding the GIL: what a
    server loaded is frozen (config.warmup.freeze_loaded), so a pass walks only what was
    made since."""
    done = run_django(
        ["-c", FROZEN, entry],
        {
            "DATABASE_URL": database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "SECRET_KEY": "x" * 50,
            "JWT_SIGNING_KEY": settings.JWT_SIGNING_KEY,
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["frozen"] > 50_000, out  # the modules, classes and settings loaded
    assert out["tracked"] < out["frozen"] / 20, out  # what a full pass still walks
