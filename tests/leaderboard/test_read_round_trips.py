"""A read of the board with a bearer token is one Redis round trip against the real
Redis: the account state that authentication needs leaves with the page
(`accounts.authentication.account_state_ahead`, `leaderboard_page_ahead`), and every
answer and error is the one the two round trips gave."""

from __future__ import annotations

import pytest
import redis
from django.conf import settings
from django_redis import get_redis_connection

from accounts.models import User
from scoreboard.services import ledger_award

pytestmark = pytest.mark.django_db(transaction=True)

TOP = "/api/v1/leaderboard/?limit=5"


def _code(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["error"]["code"]


def _scores(response) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    return [(e["username"], e["score"]) for e in response.json()["entries"]]


def test_a_read_with_a_token_is_one_round_trip(client_for, alice, bob, redis_calls) -> None:  # type: ignore[no-untyped-def]
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    ledger_award(user_id=bob.pk, delta=3, action_id="click")
    client = client_for(alice)
    assert client.get(TOP).status_code == 200  # warms the index and the account state
    redis_calls.clear()
    response = client.get(TOP)
    assert response.status_code == 200, response.content
    assert response["Cache-Control"] == "private, no-store"
    assert redis_calls == ["EVALSHA EVALSHA"], redis_calls  # the account state, the page
    assert _scores(response) == [("alice", 5), ("bob", 3)]
    ledger_award(user_id=bob.pk, delta=4, action_id="click")
    assert _scores(client.get(TOP)) == [("bob", 7), ("alice", 5)]  # as the index is now


def test_the_shared_round_trip_still_refuses_deleted_and_deactivated_accounts(  # type: ignore[no-untyped-def]
    client_for, alice, bob, django_capture_on_commit_callbacks, redis_calls
) -> None:
    alice_client, bob_client = client_for(alice), client_for(bob)
    assert alice_client.get(TOP).status_code == 200
    assert bob_client.get(TOP).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        alice.is_active = False
        alice.save()
        bob.sessions.all().delete()
        bob.delete()
    redis_calls.clear()
    for client in (alice_client, bob_client):
        response = client.get(TOP)
        assert (response.status_code, _code(response)) == (401, "token_invalid")
    assert redis_calls == ["EVALSHA EVALSHA"] * 2, redis_calls


def test_a_banned_token_reads_the_board(  # type: ignore[no-untyped-def]
    client_for, alice, django_capture_on_commit_callbacks
) -> None:
    from fraud.services import user_set_banned

    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    client = client_for(alice)
    with django_capture_on_commit_callbacks(execute=True):
        user_set_banned(user=alice, banned=True, actor="test")
    response = client.get(TOP)
    assert response.status_code == 200
    assert response.json()["entries"] == []  # banned users are not ranked


def test_errors_keep_their_order_authentication_first(client_for, api_client, alice) -> None:  # type: ignore[no-untyped-def]
    api_client.credentials(HTTP_AUTHORIZATION="Bearer not-a-token")
    bad = api_client.get("/api/v1/leaderboard/?limit=0")
    assert (bad.status_code, _code(bad)) == (401, "token_invalid")
    api_client.credentials(HTTP_AUTHORIZATION="Bearer")
    assert api_client.get(TOP).status_code == 401
    mine = client_for(alice).get("/api/v1/leaderboard/?limit=0")
    assert (mine.status_code, _code(mine)) == (400, "invalid")


def test_redis_forgetting_its_scripts_costs_a_read_nothing(client_for, alice) -> None:  # type: ignore[no-untyped-def]
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    client = client_for(alice)
    assert client.get(TOP).status_code == 200
    get_redis_connection("strict").script_flush()  # as after a Redis restart
    response = client.get(TOP)
    assert response.status_code == 200
    assert _scores(response) == [("alice", 5)]
    User.objects.filter(pk=alice.pk).update(is_active=False)  # the state is not told...
    redis.Redis.from_url(settings.REDIS_URL).delete(f"{settings.REDIS_KEY_PREFIX}:acct:ready")
    get_redis_connection("strict").script_flush()
    refused = client.get(TOP)  # ...but is rebuilt from the users table
    assert (refused.status_code, _code(refused)) == (401, "token_invalid")


def test_without_redis_the_read_answers_from_postgresql(client_for, alice, redis_down) -> None:  # type: ignore[no-untyped-def]
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    response = client_for(alice).get(TOP)
    assert response.status_code == 200
    assert _scores(response) == [("alice", 5)]
    User.objects.filter(pk=alice.pk).update(is_active=False)
    refused = client_for(alice).get(TOP)  # the user's row is read instead
    assert (refused.status_code, _code(refused)) == (401, "token_invalid")
