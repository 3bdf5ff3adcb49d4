"""Deactivating an action type holds at once in every process: a token started on a
running server before staff switch the action off, with the management command in
another process or in the admin, is refused with 409 `action_inactive` right after."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from django.test import Client

from actions.models import ActionType
from deploy.stack import ROOT, Stack
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def server(start_stack) -> Stack:  # type: ignore[no-untyped-def]
    # The default lifetime of a process's action types, made long: only the change's
    # own notice can make the server see it in time.
    return start_stack(
        web=1, ws=0, worker=False, proxy=False, extra_env={"ACTION_TYPE_CACHE_SECONDS": "300"}
    )


def started_token(server: Stack, http: httpx.Client) -> str:
    # Twice: the second start is answered from the server's kept action types.
    for _ in range(2):
        started = http.post("/api/v1/actions/exploit/start/")
        assert started.status_code == 201, started.text
    return started.json()["actionToken"]


def complete(http: httpx.Client, token: str) -> httpx.Response:
    return http.post(
        "/api/v1/actions/complete/", json={"actionId": "exploit", "actionToken": token}
    )


@pytest.fixture
def http(server: Stack) -> httpx.Client:
    ActionTypeFactory(id="exploit", reward=5)
    user = UserFactory(username="exploiter")
    headers = {"Authorization": f"Bearer {access_token_for(user)}"}
    base = f"http://127.0.0.1:{server.web_ports[0]}"
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        yield client


def test_the_command_in_another_process_switches_it_off_at_once(
    server: Stack, http: httpx.Client
) -> None:
    token = started_token(server, http)
    subprocess.run(
        [
            *(sys.executable, "manage.py", "create_action_type", "--id", "exploit"),
            *("--name", "Exploit", "--reward", "5", "--inactive"),
        ],
        cwd=ROOT,
        env=server.env(),
        check=True,
        capture_output=True,
        timeout=120,
    )
    began = time.monotonic()
    response = complete(http, token)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "action_inactive"
    assert time.monotonic() - began < 5
    again = http.post("/api/v1/actions/exploit/start/")
    assert again.status_code == 409, again.text


def test_the_admin_switches_it_off_at_once(server: Stack, http: httpx.Client) -> None:
    token = started_token(server, http)
    staff = UserFactory(username="staff", is_staff=True, is_superuser=True)
    admin = Client()
    admin.force_login(staff)
    action = ActionType.objects.get(pk="exploit")
    form = {
        "id": action.pk,
        "name": action.name,
        "reward": action.reward,
        "cooldown_seconds": action.cooldown_seconds,
        "min_duration_seconds": action.min_duration_seconds,
        "daily_cap": "",
        # "active" left out: the checkbox unticked
    }
    saved = admin.post(f"/admin/actions/actiontype/{action.pk}/change/", form)
    assert saved.status_code == 302, saved.content[-2000:]
    assert ActionType.objects.get(pk="exploit").active is False
    response = complete(http, token)
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "action_inactive"
