"""The admin's login form, driven with Django's test client: throttled per username and
per IP like the API login (one shared budget), every attempt audited with its IP, and a
staff account's lockout raising the alert (the metric, and mail to ADMINS)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail
from django.test import Client
from prometheus_client import REGISTRY

from fraud.models import AuditEvent
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

WRONG = "not-the-password"


@pytest.fixture(autouse=True)
def _limits(settings) -> None:  # type: ignore[no-untyped-def]
    # Hourly windows: a fixed window that rolls over mid-test would forget the failures.
    settings.LOGIN_FAILURES_PER_USERNAME = "5/h"
    settings.LOGIN_FAILURES_PER_IP = "8/h"
    settings.ADMINS = [("Security", "security@example.com")]


@pytest.fixture
def boss(db):  # type: ignore[no-untyped-def]
    return UserFactory(username="boss", is_staff=True, is_superuser=True)


def admin_login(client: Client, username: str, password: str, ip: str = "10.1.1.1") -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        REMOTE_ADDR=ip,
        HTTP_USER_AGENT="browser/1.0",
    )


def logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def lockouts(scope: str, staff: str) -> float:
    labels = {"scope": scope, "staff": staff}
    return REGISTRY.get_sample_value("scoreboard_login_lockouts_total", labels) or 0.0


def test_the_nth_wrong_password_locks_the_username_even_for_the_right_one(boss) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    for _ in range(5):
        assert admin_login(client, "boss", WRONG).status_code == 200
    locked = admin_login(client, "boss", WRONG)
    assert locked.status_code == 429
    assert 1 <= int(locked["Retry-After"]) <= 3600
    assert "Too many failed logins" in locked.content.decode()
    assert 'name="username"' in locked.content.decode()  # the page, not a bare error

    refused = admin_login(Client(), "BOSS", PASSWORD, ip="10.9.9.9")  # another address
    assert refused.status_code == 429
    assert not logged_in(client)


def test_wrong_passwords_for_many_usernames_from_one_ip_lock_that_ip(boss) -> None:  # type: ignore[no-untyped-def]
    client = Client()
    for n in range(8):
        assert admin_login(client, f"guess{n}", WRONG).status_code == 200
    assert admin_login(client, "boss", PASSWORD).status_code == 429
    assert not logged_in(client)

    elsewhere = Client()
    assert admin_login(elsewhere, "boss", PASSWORD, ip="10.2.2.2").status_code == 302
    assert logged_in(elsewhere)


def test_the_api_and_the_admin_share_one_budget_per_username(boss, api_client) -> None:  # type: ignore[no-untyped-def]
    for _ in range(5):
        response = api_client.post(
            "/api/v1/auth/token/", {"username": "boss", "password": WRONG}, format="json"
        )
        assert response.status_code == 401
    assert admin_login(Client(), "boss", PASSWORD).status_code == 429


def test_every_admin_login_attempt_is_audited_with_its_ip(boss) -> None:  # type: ignore[no-untyped-def]
    player = UserFactory(username="player")
    assert admin_login(Client(), "boss", WRONG, ip="10.0.0.1").status_code == 200
    assert admin_login(Client(), "nobody", WRONG, ip="10.0.0.2").status_code == 200
    assert admin_login(Client(), "player", PASSWORD, ip="10.0.0.3").status_code == 200
    assert admin_login(Client(), "boss", PASSWORD, ip="10.0.0.4").status_code == 302

    events = list(AuditEvent.objects.order_by("created_at", "id"))
    seen = [(e.kind, e.user_id, e.payload["ip"], e.payload["actor"]) for e in events]
    assert seen == [
        (AuditEvent.Kind.ADMIN_LOGIN_FAILED, boss.pk, "10.0.0.1", "boss"),
        (AuditEvent.Kind.ADMIN_LOGIN_FAILED, None, "10.0.0.2", "nobody"),
        (AuditEvent.Kind.ADMIN_LOGIN_REFUSED, player.pk, "10.0.0.3", "player"),
        (AuditEvent.Kind.ADMIN_LOGIN_SUCCEEDED, boss.pk, "10.0.0.4", "boss"),
    ]
    assert all(e.payload["userAgent"] == "browser/1.0" for e in events)


def test_a_throttled_attempt_is_audited_too(boss) -> None:  # type: ignore[no-untyped-def]
    for _ in range(6):
        admin_login(Client(), "boss", WRONG, ip="10.0.0.7")
    throttled = AuditEvent.objects.filter(kind=AuditEvent.Kind.ADMIN_LOGIN_THROTTLED)
    assert [(e.user_id, e.payload["ip"]) for e in throttled] == [(boss.pk, "10.0.0.7")]
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.ADMIN_LOGIN_FAILED).count() == 5


def test_a_staff_lockout_raises_the_alert(boss, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    before = lockouts("username", "true")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(7):
            admin_login(Client(), "boss", WRONG, ip="10.0.0.8")
    assert lockouts("username", "true") == before + 1
    assert len(mail.outbox) == 1
    alert = mail.outbox[0]
    assert alert.to == ["security@example.com"]
    assert "boss" in alert.subject
    assert "10.0.0.8" in alert.body
    locked = AuditEvent.objects.get(kind=AuditEvent.Kind.LOGIN_LOCKED_OUT)
    assert locked.user_id == boss.pk
    assert locked.payload["ip"] == "10.0.0.8"
    assert locked.payload["staff"] is True


def test_a_players_lockout_is_counted_but_mails_nobody(django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    UserFactory(username="player")
    before = lockouts("username", "false")
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(6):
            admin_login(Client(), "player", WRONG)
    assert lockouts("username", "false") == before + 1
    assert mail.outbox == []


def test_a_staff_lockout_at_the_api_raises_the_alert_too(  # type: ignore[no-untyped-def]
    boss, api_client, django_capture_on_commit_callbacks
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(5):
            api_client.post(
                "/api/v1/auth/token/", {"username": "Boss", "password": WRONG}, format="json"
            )
    assert [m.subject for m in mail.outbox] == ["[Scoreboard] Login locked out: staff account boss"]
