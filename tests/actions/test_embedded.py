"""The embedded default (`make run`: SQLite, no Redis, Celery eager) drives the whole
completion path: a player registers, logs in, starts and completes actions, is ranked,
and a refused completion changes nothing. In a fresh process configured only by the
environment, as a newcomer runs it."""

from __future__ import annotations

import json
from pathlib import Path

from tests.support import run_django

SCRIPT = r"""
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
from actions.models import ActionType
from accounts.models import User
from fraud.models import AuditEvent
from scoreboard.models import ScoreEntry
ActionType.objects.create(id="click", name="Click", reward=5)
ActionType.objects.create(id="daily", name="Daily", reward=10, cooldown_seconds=3600)
client = Client(HTTP_HOST="127.0.0.1")
out = {}
def post(path, body, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    r = client.post(path, json.dumps(body), content_type="application/json", **headers)
    return r.status_code, r.json()
login = {"username": "newcomer", "password": "a-Long-passw0rd!"}
out["register"] = post("/api/v1/auth/register/", {**login, "email": "n@example.com"})[0]
token = post("/api/v1/auth/token/", login)[1]["access"]
done = []
for action in ("click", "click", "daily", "daily"):
    status, started = post(f"/api/v1/actions/{action}/start/", {}, token)
    body = {"actionId": action, "actionToken": started["actionToken"]}
    status, body = post("/api/v1/actions/complete/", body, token)
    error = body.get("error", {}).get("code")
    done.append([status, body.get("newScore"), body.get("rank"), error])
out["completions"] = done
user = User.objects.get(username="newcomer")
entries = ScoreEntry.objects.filter(user=user)
out["score"] = user.score
out["ledger"] = sum(entries.values_list("delta", flat=True))
out["reached_equals_entry"] = user.score_reached_at == entries.latest("id").created_at
out["audited"] = AuditEvent.objects.filter(kind="completion.accepted").count()
board = client.get("/api/v1/leaderboard/?limit=3").json()["entries"]
out["board"] = [[e["username"], e["score"]] for e in board]
print(json.dumps(out))
"""


def test_a_newcomer_completes_actions_on_the_embedded_default(tmp_path: Path) -> None:
    done = run_django(
        ["-c", SCRIPT],
        {
            "DEBUG": "0",
            "SECRET_KEY": "x" * 50,
            "JWT_SIGNING_KEY": "y" * 50,
            "REDIS_URL": "",
            "CELERY_BROKER_URL": None,
            "CELERY_TASK_ALWAYS_EAGER": None,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "ALLOWED_HOSTS": "127.0.0.1",
            "COMPLETION_RATE_PER_USER": "100/m",
            "FRAUD_RULE_WEIGHTS": "new_account=0,duplicate_completion=0",
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["register"] == 201
    assert out["completions"] == [
        [200, 5, 1, None],
        [200, 10, 1, None],
        [200, 20, 1, None],
        [409, None, None, "cooldown_active"],  # refused under the row lock: rolled back
    ]
    assert out["score"] == out["ledger"] == 20
    assert out["reached_equals_entry"] is True
    assert out["audited"] == 3
    assert out["board"] == [["newcomer", 20]]


DEACTIVATE = r"""
import json, os, subprocess, sys, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django.test import Client
from actions.models import ActionType
ActionType.objects.create(id="exploit", name="Exploit", reward=5)
client = Client(HTTP_HOST="127.0.0.1")
def post(path, body, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    r = client.post(path, json.dumps(body), content_type="application/json", **headers)
    return r.status_code, r.json()
login = {"username": "newcomer", "password": "a-Long-passw0rd!"}
post("/api/v1/auth/register/", {**login, "email": "n@example.com"})
token = post("/api/v1/auth/token/", login)[1]["access"]
for _ in range(2):  # the second start is answered from the action types kept
    status, started = post("/api/v1/actions/exploit/start/", {}, token)
subprocess.run(
    [sys.executable, "manage.py", "create_action_type", "--id", "exploit", "--name", "Exploit",
     "--reward", "5", "--inactive"],
    check=True, capture_output=True, env=os.environ,
)
body = {"actionId": "exploit", "actionToken": started["actionToken"]}
status, body = post("/api/v1/actions/complete/", body, token)
print(json.dumps([status, body.get("error", {}).get("code")]))
"""


def test_a_deactivation_from_the_command_line_holds_at_once_on_the_embedded_default(
    tmp_path: Path,
) -> None:
    done = run_django(
        ["-c", DEACTIVATE],
        {
            "DEBUG": "0",
            "SECRET_KEY": "x" * 50,
            "JWT_SIGNING_KEY": "y" * 50,
            "REDIS_URL": "",
            "CELERY_BROKER_URL": None,
            "CELERY_TASK_ALWAYS_EAGER": None,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "ALLOWED_HOSTS": "127.0.0.1",
            "ACTION_TYPE_CACHE_SECONDS": "300",
            "FRAUD_RULE_WEIGHTS": "new_account=0,duplicate_completion=0",
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [409, "action_inactive"]


BOARDS = r"""
import json, time, django
django.setup()
from datetime import timedelta
from django.core.management import call_command
from django.utils import timezone
call_command("migrate", verbosity=0)
from django.test import Client
from actions.models import ActionType
from leaderboard.boards import board_save
ActionType.objects.create(id="click", name="Click", reward=5)
board_save(slug="daily", title="Today", period="day", timezone="Europe/Paris")
now = timezone.now()
end = now + timedelta(seconds=8)
board_save(slug="sprint", title="Sprint", period="season", starts_at=now - timedelta(hours=1),
           ends_at=end)
client = Client(HTTP_HOST="127.0.0.1")
def post(path, body, token=None):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    r = client.post(path, json.dumps(body), content_type="application/json", **headers)
    return r.status_code, r.json()
login = {"username": "newcomer", "password": "a-Long-passw0rd!"}
post("/api/v1/auth/register/", {**login, "email": "n@example.com"})
token = post("/api/v1/auth/token/", login)[1]["access"]
out = {"boards": []}
for _ in range(2):
    started = post("/api/v1/actions/click/start/", {}, token)[1]
    body = {"actionId": "click", "actionToken": started["actionToken"]}
    status, body = post("/api/v1/actions/complete/", body, token)
    out["boards"].append(sorted([b["board"], b["score"], b["rank"]] for b in body["boards"]))
entries = client.get("/api/v1/boards/daily/entries/").json()
out["daily"] = [[e["username"], e["score"], e["rank"]] for e in entries["entries"]]
time.sleep(max(0.0, (end - timezone.now()).total_seconds()) + 0.5)
client.get("/api/v1/boards/")  # a read closes what has ended (no beat here)
periods = client.get("/api/v1/boards/sprint/periods/").json()["periods"]
out["closed"] = [[p["key"], p["participants"], p["revision"], len(p["checksum"])] for p in periods]
print(json.dumps(out))
"""


def test_boards_count_and_close_on_the_embedded_default(tmp_path: Path) -> None:
    done = run_django(
        ["-c", BOARDS],
        {
            "DEBUG": "0",
            "SECRET_KEY": "x" * 50,
            "JWT_SIGNING_KEY": "y" * 50,
            "REDIS_URL": "",
            "CELERY_BROKER_URL": None,
            "CELERY_TASK_ALWAYS_EAGER": None,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "ALLOWED_HOSTS": "127.0.0.1",
            "COMPLETION_RATE_PER_USER": "100/m",
            "FRAUD_RULE_WEIGHTS": "new_account=0,duplicate_completion=0",
            "BOARDS_CLOSE_EVERY_SECONDS": "1",
            "BOARDS_CLOSE_GRACE_SECONDS": "0",
        },
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["boards"] == [
        [["daily", 5, 1], ["sprint", 5, 1]],
        [["daily", 10, 1], ["sprint", 10, 1]],
    ]
    assert out["daily"] == [["newcomer", 10, 1]]
    assert out["closed"] == [["sprint", 1, 1, 64]]
