"""bench.inprocess calls the real WSGI application: the paths it measures answer 200."""

from __future__ import annotations

import pytest
from django.core.handlers.wsgi import WSGIHandler

from bench.inprocess import caller, cpu_per_request
from scoreboard.services import ledger_award
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_measures_the_paths_as_a_client_would_get_them() -> None:
    ledger_award(user_id=UserFactory(username="alice").pk, delta=3)
    application = WSGIHandler()
    board = caller(application, "/api/v1/leaderboard/?limit=1")
    assert board() == "200 OK"
    assert caller(application, "/healthz")() == "200 OK"
    assert caller(application, "/api/v1/leaderboard/?limit=0")() == "400 Bad Request"
    assert cpu_per_request(board, 5) > 0
