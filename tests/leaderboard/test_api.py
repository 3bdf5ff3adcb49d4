"""REST reads of the board, with their edges and query counts."""

from __future__ import annotations

import uuid

import pytest

from scoreboard.services import ledger_award
from tests.conftest import access_token_for
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def players():  # type: ignore[no-untyped-def]
    users = [UserFactory(username=f"p{n:02d}") for n in range(20)]
    for n, user in enumerate(users):
        ledger_award(user_id=user.pk, delta=100 - n)  # p00 first ... p19 last
    return users


def test_it_lists_the_top_of_the_board(api_client, players, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    with django_assert_max_num_queries(0):
        response = api_client.get("/api/v1/leaderboard/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"entries", "total", "version", "generatedAt"}
    assert body["total"] == 20
    assert [e["username"] for e in body["entries"]] == [f"p{n:02d}" for n in range(10)]
    assert body["entries"][0] == {
        "rank": 1,
        "userId": str(players[0].pk),
        "username": "p00",
        "score": 100,
    }


def test_it_pages_with_limit_and_offset(api_client, players) -> None:  # type: ignore[no-untyped-def]
    body = api_client.get("/api/v1/leaderboard/?limit=3&offset=18").json()
    assert [(e["rank"], e["username"]) for e in body["entries"]] == [(19, "p18"), (20, "p19")]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "offset=-1", "limit=ten"])
def test_it_refuses_bad_paging(api_client, query) -> None:  # type: ignore[no-untyped-def]
    response = api_client.get(f"/api/v1/leaderboard/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid"


def test_it_shows_the_users_around_me(client_for, players, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    client = client_for(players[10])
    client.get("/api/v1/leaderboard/me/")  # the first request builds the account state
    with django_assert_max_num_queries(0):  # the token's claims: no user query
        body = client.get("/api/v1/leaderboard/me/?radius=2").json()
    assert body["me"] == {"rank": 11, "score": 90}
    assert [e["rank"] for e in body["entries"]] == [9, 10, 11, 12, 13]


def test_it_clips_around_me_at_the_edges(client_for, players) -> None:  # type: ignore[no-untyped-def]
    first = client_for(players[0]).get("/api/v1/leaderboard/me/?radius=3").json()
    assert [e["rank"] for e in first["entries"]] == [1, 2, 3, 4]
    last = client_for(players[19]).get("/api/v1/leaderboard/me/?radius=3").json()
    assert [e["rank"] for e in last["entries"]] == [17, 18, 19, 20]


def test_it_answers_around_me_for_an_unranked_user(client_for, players) -> None:  # type: ignore[no-untyped-def]
    newcomer = UserFactory(username="newcomer")
    body = client_for(newcomer).get("/api/v1/leaderboard/me/").json()
    assert body == {"me": {"rank": None, "score": 0}, "entries": []}


def test_it_refuses_a_radius_out_of_range(client_for, players) -> None:  # type: ignore[no-untyped-def]
    assert client_for(players[0]).get("/api/v1/leaderboard/me/?radius=26").status_code == 400


def test_it_requires_login_for_around_me(api_client) -> None:  # type: ignore[no-untyped-def]
    assert api_client.get("/api/v1/leaderboard/me/").status_code == 401


def test_it_answers_one_users_rank(api_client, players, django_assert_max_num_queries) -> None:  # type: ignore[no-untyped-def]
    with django_assert_max_num_queries(1):
        body = api_client.get(f"/api/v1/leaderboard/users/{players[4].pk}/").json()
    assert body == {"rank": 5, "userId": str(players[4].pk), "username": "p04", "score": 96}


@pytest.mark.parametrize("user_id", [str(uuid.uuid4()), "not-a-uuid"])
def test_it_answers_404_for_unknown_users(api_client, user_id) -> None:  # type: ignore[no-untyped-def]
    response = api_client.get(f"/api/v1/leaderboard/users/{user_id}/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_it_lets_a_banned_users_token_read_the_board(api_client, players) -> None:  # type: ignore[no-untyped-def]
    token = access_token_for(players[0])
    players[0].is_banned = True
    players[0].save()
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert api_client.get("/api/v1/leaderboard/").status_code == 200
