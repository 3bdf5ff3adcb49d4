"""Attacks kept as regression tests, the ones not covered elsewhere: markup and SQL in
every string field a client or staff member controls, shown escaped in the admin (the
live page: tests/e2e/test_browser.py); CORS from an unlisted origin.

Covered elsewhere: tampered and foreign action tokens (tests/actions/test_complete_api.py),
JWT alg none, wrong key, audience, issuer, expired and refresh reuse
(tests/accounts/test_auth_api.py), a foreign WebSocket Origin
(tests/leaderboard/test_consumer.py), oversize bodies (tests/core/test_errors.py,
tests/e2e/test_stack.py), oversize frames and a socket flood (tests/e2e/test_live_updates.py).
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts.models import User
from actions.models import Completion
from actions.services import completion_reverse
from fraud.models import FraudLog
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [pytest.mark.quickfaults, pytest.mark.django_db(transaction=True)]

EVIL = "<script>alert(1)</script>' OR 1=1; DROP TABLE accounts_user; --"


@pytest.fixture
def planted(client_for, start, complete, settings):  # type: ignore[no-untyped-def]
    """Markup and SQL in a username, an email, an action's name, a user agent and a
    reversal note; a completion flagged so the fraud desk shows it."""
    settings.FRAUD_FLAG_THRESHOLD = 0.0
    ActionTypeFactory(id="evil", name=EVIL, reward=5)
    user = UserFactory(username=EVIL[:150], email="x@example.com")
    client = client_for(user)
    response = complete(client, "evil", start(client, "evil"), HTTP_USER_AGENT=EVIL)
    assert response.status_code == 200, response.content
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    completion = Completion.objects.get()
    completion_reverse(completion=completion, admin=admin, note=EVIL)
    return admin, user, completion


def test_it_shows_markup_and_sql_escaped_in_the_admin(planted) -> None:  # type: ignore[no-untyped-def]
    admin, user, completion = planted
    client = Client()
    client.force_login(admin)
    pages = [
        "/admin/accounts/user/",
        f"/admin/accounts/user/{user.pk}/change/",
        "/admin/actions/actiontype/",
        "/admin/actions/actiontype/evil/change/",
        "/admin/actions/completion/",
        f"/admin/actions/completion/{completion.pk}/change/",
        "/admin/scoreboard/scoreentry/",
        "/admin/fraud/auditevent/",
        "/admin/fraud/fraudlog/",
    ]
    log = FraudLog.objects.first()
    if log is not None:
        pages.append(f"/admin/fraud/fraudlog/{log.pk}/change/")
    shown = 0
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200, path
        html = response.content.decode()
        assert "<script>alert(1)</script>" not in html, path
        shown += "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert shown >= 5, shown
    # The SQL was stored as text, never run.
    assert User.objects.filter(pk=user.pk).exists()


def test_it_refuses_cors_to_an_unlisted_origin(settings) -> None:  # type: ignore[no-untyped-def]
    settings.CORS_ALLOWED_ORIGINS = ["https://app.example"]
    client = Client()
    preflight = {
        "HTTP_ORIGIN": "https://evil.example",
        "HTTP_ACCESS_CONTROL_REQUEST_METHOD": "POST",
        "HTTP_ACCESS_CONTROL_REQUEST_HEADERS": "authorization, content-type",
    }
    response = client.options("/api/v1/actions/complete/", **preflight)
    assert "Access-Control-Allow-Origin" not in response.headers
    response = client.get("/api/v1/leaderboard/", HTTP_ORIGIN="https://evil.example")
    assert "Access-Control-Allow-Origin" not in response.headers
    allowed = client.options(
        "/api/v1/actions/complete/", **{**preflight, "HTTP_ORIGIN": "https://app.example"}
    )
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
