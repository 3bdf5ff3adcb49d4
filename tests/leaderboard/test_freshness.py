"""Freshness of board reads (SPEC "Leaderboard"): credentials read the index as it is now
and are never stored by a shared cache; an anonymous read is public for a second, with an
ETag that changes with the page and `If-None-Match` answered 304 without a body."""

from __future__ import annotations

import pytest

from leaderboard.boards import board_save
from scoreboard.services import ledger_award

pytestmark = pytest.mark.django_db(transaction=True)

PATHS = ["/api/v1/leaderboard/?limit=5", "/api/v1/boards/daily/entries/?limit=5"]


@pytest.mark.parametrize("path", PATHS)
def test_an_anonymous_read_is_public_for_a_second_with_an_etag(  # type: ignore[no-untyped-def]
    path, api_client, alice
) -> None:
    board_save(slug="daily", title="Today", period="day")
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    first = api_client.get(path)
    assert first.status_code == 200
    assert first["Cache-Control"] == "public, max-age=1"
    etag = first["ETag"]
    assert etag.startswith('"')
    again = api_client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert again.status_code == 304
    assert again.content == b""
    assert again["ETag"] == etag
    ledger_award(user_id=alice.pk, delta=1, action_id="click")  # the page changes
    changed = api_client.get(path, HTTP_IF_NONE_MATCH=etag)
    assert changed.status_code == 200
    assert changed["ETag"] != etag
    assert changed.json()["entries"][0]["score"] == 6


@pytest.mark.parametrize("path", PATHS)
def test_a_read_with_credentials_is_private_and_never_304(  # type: ignore[no-untyped-def]
    path, api_client, client_for, alice
) -> None:
    board_save(slug="daily", title="Today", period="day")
    ledger_award(user_id=alice.pk, delta=5, action_id="click")
    etag = api_client.get(path)["ETag"]
    mine = client_for(alice).get(path, HTTP_IF_NONE_MATCH=etag)
    assert mine.status_code == 200
    assert mine["Cache-Control"] == "private, no-store"
    assert not mine.has_header("ETag")
    api_client.cookies["sessionid"] = "any"  # a browser's session
    assert api_client.get(path)["Cache-Control"] == "private, no-store"
