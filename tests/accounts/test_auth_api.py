"""Registration, tokens, refresh rotation, logout, sessions and the JWT policy, over HTTP."""

from __future__ import annotations

import time
from datetime import timedelta

import jwt
import pytest
from django.conf import settings
from rest_framework.test import APIClient
from rest_framework_simplejwt.tokens import AccessToken
from rest_framework_simplejwt.utils import datetime_to_epoch

from accounts.models import User
from accounts.tokens import PlayerRefreshToken
from tests.conftest import access_token_for
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


def error_code(response) -> str:  # type: ignore[no-untyped-def]
    body = response.json()
    assert set(body["error"]) == {"code", "message", "details"}
    return body["error"]["code"]


def login(client: APIClient, username: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    return client.post(
        "/api/v1/auth/token/", {"username": username, "password": password}, format="json"
    )


# --- registration -----------------------------------------------------------------------


def test_it_registers_a_user(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/auth/register/",
        {"username": "newbie", "email": "Newbie@Example.com", "password": "a-long-unusual-pass-42"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    body = response.json()
    assert set(body) == {"id", "username", "email", "dateJoined"}
    assert body["email"] == "newbie@example.com"
    user = User.objects.get(username="newbie")
    assert user.password.startswith("argon2")


def test_it_refuses_a_duplicate_username_case_insensitively(api_client: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    response = api_client.post(
        "/api/v1/auth/register/",
        {"username": "ALICE", "email": "other@example.com", "password": "a-long-unusual-pass-42"},
        format="json",
    )
    assert response.status_code == 400
    assert error_code(response) == "invalid"
    assert "username" in response.json()["error"]["details"]["fields"]


def test_it_refuses_a_duplicate_email(api_client: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    response = api_client.post(
        "/api/v1/auth/register/",
        {"username": "alice2", "email": alice.email.upper(), "password": "a-long-unusual-pass-42"},
        format="json",
    )
    assert response.status_code == 400
    assert "email" in response.json()["error"]["details"]["fields"]


def test_it_refuses_a_weak_password(api_client: APIClient) -> None:
    response = api_client.post(
        "/api/v1/auth/register/",
        {"username": "weakling", "email": "w@example.com", "password": "123456"},
        format="json",
    )
    assert response.status_code == 400
    assert "password" in response.json()["error"]["details"]["fields"]
    assert not User.objects.filter(username="weakling").exists()


def test_it_lists_every_missing_field(api_client: APIClient) -> None:
    response = api_client.post("/api/v1/auth/register/", {}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]["fields"]) == {"username", "email", "password"}


# --- tokens and sessions ----------------------------------------------------------------


def test_it_issues_tokens_for_good_credentials(api_client: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    response = login(api_client, "alice")
    assert response.status_code == 200
    assert set(response.json()) == {"access", "refresh"}
    claims = jwt.decode(
        response.json()["access"],
        settings.JWT_SIGNING_KEY,
        algorithms=["HS256"],
        audience="scoreboard-api",
        issuer="scoreboard",
    )
    assert claims["user_id"] == str(alice.pk)
    assert claims["exp"] - claims["iat"] == 15 * 60


def test_a_pairs_access_token_is_issued_at_the_pairs_time(alice) -> None:  # type: ignore[no-untyped-def]
    # The session row is written between the refresh token and its access token; were
    # the access token stamped when it is built, a second's boundary in between would
    # make its exp - iat a second short of the lifetime. Here 1.5 s pass in between.
    refresh = PlayerRefreshToken.for_user(alice)
    refresh.current_time -= timedelta(seconds=1.5)
    access = refresh.access_token
    assert access["iat"] == datetime_to_epoch(refresh.current_time)
    assert access["exp"] - access["iat"] == 15 * 60


def test_it_refuses_bad_credentials(api_client: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    response = login(api_client, "alice", "wrong-password")
    assert response.status_code == 401
    assert error_code(response) == "credentials_invalid"


def test_it_rotates_refresh_tokens_and_refuses_the_old_one(api_client: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    first = login(api_client, "alice").json()
    rotated = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": first["refresh"]}, format="json"
    )
    assert rotated.status_code == 200
    assert rotated.json()["refresh"] != first["refresh"]
    again = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": first["refresh"]}, format="json"
    )
    assert again.status_code == 401
    assert error_code(again) == "token_invalid"
    newest = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": rotated.json()["refresh"]}, format="json"
    )
    assert newest.status_code == 200


def test_it_ends_the_session_on_logout(api_client: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    tokens = login(api_client, "alice").json()
    response = api_client.post(
        "/api/v1/auth/logout/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert response.status_code == 205
    refused = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": tokens["refresh"]}, format="json"
    )
    assert refused.status_code == 401


def test_it_lists_and_revokes_sessions(api_client: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    laptop = login(api_client, "alice").json()
    phone = APIClient(HTTP_USER_AGENT="phone/1.0")
    phone_tokens = login(phone, "alice").json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {laptop['access']}")
    sessions = api_client.get("/api/v1/me/sessions/").json()
    assert len(sessions) == 2
    assert set(sessions[0]) == {"id", "createdAt", "lastUsedAt", "expiresAt", "ip", "userAgent"}
    phone_session = next(s for s in sessions if s["userAgent"] == "phone/1.0")
    assert api_client.delete(f"/api/v1/me/sessions/{phone_session['id']}/").status_code == 204
    refused = phone.post(
        "/api/v1/auth/token/refresh/", {"refresh": phone_tokens["refresh"]}, format="json"
    )
    assert refused.status_code == 401
    still = api_client.post(
        "/api/v1/auth/token/refresh/", {"refresh": laptop["refresh"]}, format="json"
    )
    assert still.status_code == 200


def test_it_revokes_every_session_with_all(api_client: APIClient, alice) -> None:  # type: ignore[no-untyped-def]
    tokens = [login(api_client, "alice").json() for _ in range(3)]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {tokens[0]['access']}")
    assert api_client.delete("/api/v1/me/sessions/all/").status_code == 204
    for pair in tokens:
        response = api_client.post(
            "/api/v1/auth/token/refresh/", {"refresh": pair["refresh"]}, format="json"
        )
        assert response.status_code == 401


def test_it_hides_other_users_sessions(api_client: APIClient, alice, bob) -> None:  # type: ignore[no-untyped-def]
    login(api_client, "bob")
    bob_session = bob.sessions.get()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(alice)}")
    assert api_client.delete(f"/api/v1/me/sessions/{bob_session.pk}/").status_code == 404
    assert api_client.delete("/api/v1/me/sessions/not-a-uuid/").status_code == 404


# --- the JWT policy ---------------------------------------------------------------------


def _forged(claims: dict, key: str | None = None, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key or settings.JWT_SIGNING_KEY, algorithm=algorithm)


def _claims(user, **overrides) -> dict:  # type: ignore[no-untyped-def]
    now = int(time.time())
    claims = {
        "token_type": "access",
        "user_id": str(user.pk),
        "jti": "x" * 32,
        "iat": now,
        "exp": now + 600,
        "aud": "scoreboard-api",
        "iss": "scoreboard",
    }
    claims.update(overrides)
    return claims


def me_with(token: str | None):  # type: ignore[no-untyped-def]
    client = APIClient()
    if token is not None:
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return client.get("/api/v1/me/")


def test_it_answers_me_with_score_and_rank(alice, django_capture_on_commit_callbacks) -> None:  # type: ignore[no-untyped-def]
    from scoreboard.services import ledger_award

    response = me_with(access_token_for(alice))
    assert response.status_code == 200
    assert set(response.json()) == {"id", "username", "score", "rank", "dateJoined"}
    assert response.json()["rank"] is None  # no points yet: not on the board
    with django_capture_on_commit_callbacks(execute=True):
        ledger_award(user_id=alice.pk, delta=7)
    assert me_with(access_token_for(alice)).json() | {"dateJoined": None} == {
        "id": str(alice.pk),
        "username": "alice",
        "score": 7,
        "rank": 1,
        "dateJoined": None,
    }


def test_it_requires_a_token(db) -> None:  # type: ignore[no-untyped-def]
    response = me_with(None)
    assert response.status_code == 401
    assert error_code(response) == "not_authenticated"


@pytest.mark.parametrize(
    "make_token",
    [
        pytest.param(lambda u: "not-a-jwt", id="malformed"),
        pytest.param(
            lambda u: _forged(_claims(u), key="another-key-entirely-0123456789abcdef"),
            id="wrong-signature",
        ),
        pytest.param(lambda u: jwt.encode(_claims(u), None, algorithm="none"), id="alg-none"),
        pytest.param(lambda u: _forged(_claims(u), algorithm="HS512"), id="other-alg"),
        pytest.param(lambda u: _forged(_claims(u, aud="someone-else")), id="wrong-audience"),
        pytest.param(lambda u: _forged(_claims(u, iss="someone-else")), id="wrong-issuer"),
        pytest.param(lambda u: _forged(_claims(u, token_type="refresh")), id="refresh-as-access"),
    ],
)
def test_it_refuses_bad_tokens(alice, make_token) -> None:  # type: ignore[no-untyped-def]
    response = me_with(make_token(alice))
    assert response.status_code == 401
    assert error_code(response) == "token_invalid"


def test_it_refuses_an_expired_token(alice) -> None:  # type: ignore[no-untyped-def]
    token = AccessToken.for_user(alice)
    token.set_exp(lifetime=-timedelta(seconds=1))
    response = me_with(str(token))
    assert response.status_code == 401
    assert error_code(response) == "token_expired"


def test_it_refuses_tokens_of_inactive_and_deleted_users(alice, bob) -> None:  # type: ignore[no-untyped-def]
    alice_token, bob_token = access_token_for(alice), access_token_for(bob)
    alice.is_active = False
    alice.save()
    bob.sessions.all().delete()
    User.objects.filter(pk=bob.pk).delete()
    assert me_with(alice_token).status_code == 401
    assert me_with(bob_token).status_code == 401


def test_it_refuses_a_banned_users_token_on_me_and_writes(alice) -> None:  # type: ignore[no-untyped-def]
    token = access_token_for(alice)
    alice.is_banned = True
    alice.save()
    response = me_with(token)
    assert response.status_code == 403
    assert error_code(response) == "user_banned"
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.post("/api/v1/auth/logout/", {"refresh": "x"}, format="json")
    assert response.status_code in (400, 401)  # logout needs no access token


def test_it_refuses_login_to_a_banned_user(api_client: APIClient, mallory) -> None:  # type: ignore[no-untyped-def]
    mallory.is_banned = True
    mallory.save()
    response = login(api_client, "mallory")
    assert response.status_code == 403
    assert error_code(response) == "user_banned"


# --- brute force ------------------------------------------------------------------------


def test_it_limits_failed_logins_per_username(api_client: APIClient, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_FAILURES_PER_USERNAME = "3/m"
    for _ in range(3):
        assert login(api_client, "alice", "nope").status_code == 401
    limited = login(api_client, "alice", "nope")
    assert limited.status_code == 429
    assert error_code(limited) == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 60
    # the right password is refused too while the username is locked
    assert login(api_client, "alice").status_code == 429


def test_it_does_not_count_successful_logins(api_client: APIClient, alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_FAILURES_PER_USERNAME = "2/m"
    for _ in range(5):
        assert login(api_client, "alice").status_code == 200


def test_it_limits_failed_logins_per_ip(api_client: APIClient, alice, bob, settings) -> None:  # type: ignore[no-untyped-def]
    settings.LOGIN_FAILURES_PER_IP = "2/m"
    assert login(api_client, "alice", "x").status_code == 401
    assert login(api_client, "bob", "x").status_code == 401
    assert login(api_client, "carol", "x").status_code == 429
