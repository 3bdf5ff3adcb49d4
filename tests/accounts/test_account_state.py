"""Authentication from the token's claims and the account state in Redis (accounts.state):
no user query per request, and bans, deactivations and deletions still count at once."""

from __future__ import annotations

import redis
from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User
from accounts.state import BANNED, account_state
from fraud.services import user_set_banned


def _state_keys() -> list[str]:
    return [f"{settings.REDIS_KEY_PREFIX}:acct:{name}" for name in ("ready", "blocked", "deleted")]


def _code(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["error"]["code"]


def test_an_authenticated_request_reads_no_user_row(  # type: ignore[no-untyped-def]
    client_for, alice, click, django_assert_num_queries
) -> None:
    client = client_for(alice)
    assert client.post("/api/v1/actions/click/start/").status_code == 201  # warms the state
    with django_assert_num_queries(0):
        response = client.post("/api/v1/actions/click/start/")
    assert response.status_code == 201


def test_a_ban_counts_on_the_next_request(  # type: ignore[no-untyped-def]
    client_for, alice, click, django_capture_on_commit_callbacks
) -> None:
    client = client_for(alice)
    assert client.post("/api/v1/actions/click/start/").status_code == 201
    with django_capture_on_commit_callbacks(execute=True):
        user_set_banned(user=alice, banned=True, actor="test")
    assert account_state(alice.pk) == BANNED
    refused = client.post("/api/v1/actions/click/start/")
    assert (refused.status_code, _code(refused)) == (403, "user_banned")
    assert _code(client.get("/api/v1/me/")) == "user_banned"
    assert client.get("/api/v1/leaderboard/").status_code == 200  # public reads stay open

    with django_capture_on_commit_callbacks(execute=True):
        user_set_banned(user=alice, banned=False, actor="test")
    assert client.post("/api/v1/actions/click/start/").status_code == 201


def test_deactivation_and_deletion_count_on_the_next_request(  # type: ignore[no-untyped-def]
    client_for, alice, bob, django_capture_on_commit_callbacks
) -> None:
    alice_client, bob_client = client_for(alice), client_for(bob)
    assert alice_client.get("/api/v1/me/").status_code == 200
    assert bob_client.get("/api/v1/me/").status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        alice.is_active = False
        alice.save()
        bob.sessions.all().delete()
        bob.delete()
    for client in (alice_client, bob_client):
        response = client.post("/api/v1/actions/click/start/")
        assert (response.status_code, _code(response)) == (401, "token_invalid")
    with django_capture_on_commit_callbacks(execute=True):
        alice.is_active = True
        alice.save()
    assert alice_client.get("/api/v1/me/").status_code == 200


def test_a_lost_state_is_rebuilt_from_the_database(client_for, alice, bob) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    assert client.get("/api/v1/me/").status_code == 200
    # A ban Redis never heard of (written while it was away), then Redis loses its data.
    User.objects.filter(pk=alice.pk).update(is_banned=True)
    User.objects.filter(pk=bob.pk).update(is_active=False)
    redis.Redis.from_url(settings.REDIS_URL).delete(*_state_keys())
    refused = client.post("/api/v1/actions/click/start/")
    assert (refused.status_code, _code(refused)) == (403, "user_banned")
    assert account_state(alice.pk) == BANNED  # rebuilt from the users table
    assert account_state(bob.pk) == "inactive"


def test_a_ban_the_state_missed_still_stops_the_completion(  # type: ignore[no-untyped-def]
    client_for, alice, click, start, complete
) -> None:
    """The completion's row lock reads the ban itself: a score never rises for a banned
    user, even in the moment before the state knows."""
    client = client_for(alice)
    token = start(client, "click")
    User.objects.filter(pk=alice.pk).update(is_banned=True)  # no commit hook: Redis not told
    refused = complete(client, "click", token)
    assert (refused.status_code, _code(refused)) == (403, "user_banned")
    alice.refresh_from_db()
    assert alice.score == 0


def test_without_redis_the_row_is_read(client_for, alice, click, redis_down) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    assert client.get("/api/v1/me/").status_code == 200
    User.objects.filter(pk=alice.pk).update(is_banned=True)
    refused = client.post("/api/v1/actions/click/start/")
    assert (refused.status_code, _code(refused)) == (403, "user_banned")


def test_a_token_without_the_newer_claims_still_works(api_client, alice, click) -> None:  # type: ignore[no-untyped-def]
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {AccessToken.for_user(alice)}")
    assert api_client.post("/api/v1/actions/click/start/").status_code == 201
    body = api_client.get("/api/v1/me/").json()
    assert body["username"] == "alice"
