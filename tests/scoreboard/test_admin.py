"""Staff can open every admin list of the project; the ledger cannot be edited there."""

from __future__ import annotations

import pytest
from django.test import Client

from scoreboard.services import ledger_award
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PAGES = [
    "/admin/accounts/user/",
    "/admin/accounts/user/?q=alice&is_banned__exact=0",
    "/admin/actions/actiontype/",
    "/admin/actions/completion/",
    "/admin/scoreboard/scoreentry/",
    "/admin/fraud/auditevent/",
]


@pytest.fixture
def staff_client(alice) -> Client:  # type: ignore[no-untyped-def]
    ledger_award(user_id=alice.pk, delta=3)
    admin = UserFactory(username="admin", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    return client


@pytest.mark.parametrize("path", PAGES)
def test_it_opens_admin_lists(staff_client: Client, path: str) -> None:
    response = staff_client.get(path)
    assert response.status_code == 200


def test_it_keeps_the_ledger_read_only(staff_client: Client) -> None:
    assert staff_client.get("/admin/scoreboard/scoreentry/add/").status_code == 403


def test_it_shows_the_score_read_only(staff_client: Client, alice) -> None:  # type: ignore[no-untyped-def]
    page = staff_client.get(f"/admin/accounts/user/{alice.pk}/change/").content.decode()
    assert 'name="score"' not in page
