"""Races against PostgreSQL with real concurrent requests: threads, each with its own
database connection, in transactions that really commit."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections
from django.db.models import Sum
from rest_framework.test import APIClient

from accounts.models import User
from actions.models import Completion
from scoreboard.models import ScoreEntry
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def run_concurrently(calls: list[Callable[[], Any]], timeout: float = 60) -> list[Any]:
    """Start every call at once (a barrier) and collect the results in order."""
    results: list[Any] = [None] * len(calls)
    barrier = threading.Barrier(len(calls))

    def worker(index: int) -> None:
        try:
            barrier.wait(timeout=timeout)
            results[index] = calls[index]()
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    assert not any(thread.is_alive() for thread in threads), "a request hung"
    return results


def authed(user) -> APIClient:  # type: ignore[no-untyped-def]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    return client


def start(user, action_id: str) -> str:  # type: ignore[no-untyped-def]
    return authed(user).post(f"/api/v1/actions/{action_id}/start/").json()["actionToken"]


def complete_call(user, action_id: str, token: str, **headers: str) -> Callable[[], int]:  # type: ignore[no-untyped-def]
    client = authed(user)

    def call() -> int:
        response = client.post(
            "/api/v1/actions/complete/",
            {"actionId": action_id, "actionToken": token},
            format="json",
            **headers,
        )
        return (
            response.status_code
            if response.status_code != 409
            else response.json()["error"]["code"]
        )

    return call


def test_it_accepts_one_token_exactly_once_under_a_race(alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_USER = "1000/m"
    ActionTypeFactory(id="click", reward=3)
    token = start(alice, "click")
    results = run_concurrently([complete_call(alice, "click", token) for _ in range(32)])
    assert Counter(results) == {200: 1, "token_replayed": 31}
    alice.refresh_from_db()
    assert alice.score == 3
    assert Completion.objects.count() == 1


def test_it_holds_the_cooldown_under_a_race(alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_USER = "1000/m"
    ActionTypeFactory(id="daily", reward=10, cooldown_seconds=3600)
    calls = [complete_call(alice, "daily", start(alice, "daily")) for _ in range(20)]
    results = run_concurrently(calls)
    assert Counter(results) == {200: 1, "cooldown_active": 19}
    alice.refresh_from_db()
    assert alice.score == 10


def test_it_holds_the_daily_cap_under_a_race(alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_USER = "1000/m"
    ActionTypeFactory(id="capped", reward=1, daily_cap=3)
    calls = [complete_call(alice, "capped", start(alice, "capped")) for _ in range(12)]
    assert Counter(run_concurrently(calls)) == {200: 3, "daily_cap_reached": 9}


def test_it_keeps_scores_equal_to_the_ledger_under_concurrent_load(settings) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_USER = "1000/m"
    settings.COMPLETION_RATE_PER_IP = "100000/m"
    # Twenty completions a user in a few seconds is what the fraud rules exist to stop,
    # and how many they stop depends on the machine's speed: off here, where the subject
    # is the ledger (tests/fraud covers the rules).
    settings.FRAUD_RULE_WEIGHTS = dict.fromkeys(settings.FRAUD_RULE_WEIGHTS, 0.0)
    ActionTypeFactory(id="a", reward=3)
    ActionTypeFactory(id="b", reward=7)
    users = [UserFactory() for _ in range(10)]
    jobs = [(users[i % 10], "a" if i % 3 else "b") for i in range(200)]
    prepared = [(user, action, start(user, action)) for user, action in jobs]
    lock = threading.Lock()
    queue = list(prepared)
    statuses: list[int] = []

    def drain() -> None:
        while True:
            with lock:
                if not queue:
                    return
                user, action, token = queue.pop()
            statuses.append(complete_call(user, action, token)())

    run_concurrently([drain for _ in range(8)], timeout=120)
    assert Counter(statuses) == {200: 200}
    for user in User.objects.filter(pk__in=[u.pk for u in users]):
        ledger = ScoreEntry.objects.filter(user=user).aggregate(s=Sum("delta"))["s"]
        rewards = Completion.objects.filter(user=user).aggregate(s=Sum("action__reward"))["s"]
        assert user.score == ledger == rewards
        assert user.score == sum(3 if a == "a" else 7 for u, a in jobs if u.pk == user.pk)


def test_it_admits_exactly_the_rate_limit_under_a_race(alice, settings) -> None:  # type: ignore[no-untyped-def]
    # A fixed window: an hour's, so that a slow run does not straddle two windows (a
    # minute's window crossed mid-race admits up to twice the limit, rightly).
    settings.COMPLETION_RATE_PER_USER = "5/h"
    ActionTypeFactory(id="click", reward=1)
    calls = [complete_call(alice, "click", start(alice, "click")) for _ in range(20)]
    results = run_concurrently(calls)
    assert results.count(200) == 5
    assert results.count(429) == 15


def test_it_awards_an_idempotent_retry_once_under_a_race(alice, settings) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_USER = "1000/m"
    ActionTypeFactory(id="click", reward=4)
    token = start(alice, "click")
    calls = [complete_call(alice, "click", token, HTTP_IDEMPOTENCY_KEY="same") for _ in range(10)]
    results = run_concurrently(calls)
    assert set(results) <= {200, "idempotency_in_progress"}
    assert 200 in results
    alice.refresh_from_db()
    assert alice.score == 4


def test_a_flagged_completion_and_a_review_of_the_same_user_do_not_deadlock(settings) -> None:  # type: ignore[no-untyped-def]
    """A review writes the user's fraud log and risk profile, and its foreign keys to the
    user are checked at COMMIT (FOR KEY SHARE on the user's row). A flagged completion
    holds the user's row and then writes the same profile. The completion's lock must not
    block that key check (FOR NO KEY UPDATE), or PostgreSQL kills one of the two."""
    from fraud.models import FraudLog, RiskProfile

    settings.FRAUD_RULE_WEIGHTS = {"new_account": 0.5}  # every completion here is flagged
    settings.FRAUD_FLAG_THRESHOLD = 0.1
    settings.FRAUD_BLOCK_THRESHOLD = 1.0
    ActionTypeFactory(id="click", reward=5)
    user = UserFactory(username="reviewed")
    token = start(user, "click")
    holding, done = threading.Event(), threading.Event()

    def review() -> str:
        from django.db import transaction

        with transaction.atomic():
            RiskProfile.objects.select_for_update().get_or_create(user=user)
            FraudLog.objects.create(user=user, event=FraudLog.Event.REVIEWED, risk_score=0.1)
            holding.set()
            done.wait(timeout=3)  # the completion is waiting on the profile by now
        return "committed"

    def completion() -> int:
        holding.wait(timeout=10)
        threading.Timer(1.0, done.set).start()
        return complete_call(user, "click", token)()

    assert run_concurrently([review, completion]) == ["committed", 200]
    user.refresh_from_db()
    assert user.score == 5
    assert RiskProfile.objects.get(user=user).flags_count == 1
