"""The complete endpoint: the happy path and every refusal, with its status and code."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from actions.models import Completion
from actions.tokens import action_token_issue
from scoreboard.models import ScoreEntry
from scoreboard.selectors import ledger_sum
from tests.factories import ActionTypeFactory

pytestmark = pytest.mark.django_db


def code(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["error"]["code"]


def past_token(user, action_id: str, seconds_ago: float) -> str:  # type: ignore[no-untyped-def]
    raw, _ = action_token_issue(
        user_id=user.pk, action_id=action_id, now=timezone.now() - timedelta(seconds=seconds_ago)
    )
    return raw


def test_it_lists_active_action_types(api_client, click) -> None:  # type: ignore[no-untyped-def]
    ActionTypeFactory(id="retired", active=False)
    response = api_client.get("/api/v1/actions/")
    assert response.status_code == 200
    assert response.json() == [
        {
            "id": "click",
            "name": "Click",
            "reward": 5,
            "cooldownSeconds": 0,
            "minDurationSeconds": 0,
            "dailyCap": None,
        }
    ]


def test_it_starts_an_action(client_for, alice) -> None:  # type: ignore[no-untyped-def]
    ActionTypeFactory(id="quiz", min_duration_seconds=30)
    response = client_for(alice).post("/api/v1/actions/quiz/start/")
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"actionId", "actionToken", "expiresAt", "earliestCompletionAt"}
    from datetime import datetime

    earliest = datetime.fromisoformat(body["earliestCompletionAt"])
    expires = datetime.fromisoformat(body["expiresAt"])
    assert expires - earliest == timedelta(seconds=600 - 30)
    assert abs((earliest - timezone.now()).total_seconds() - 30) < 5


def test_it_refuses_to_start_an_unknown_action(client_for, alice) -> None:  # type: ignore[no-untyped-def]
    response = client_for(alice).post("/api/v1/actions/nope/start/")
    assert response.status_code == 404
    assert code(response) == "action_not_found"


def test_it_requires_login_to_start(api_client, click) -> None:  # type: ignore[no-untyped-def]
    assert api_client.post("/api/v1/actions/click/start/").status_code == 401


@pytest.mark.django_db(transaction=True)  # the rank is read after a real commit
def test_it_accepts_a_completion_and_raises_the_score(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["success"] is True
    assert body["delta"] == 5
    assert body["newScore"] == 5
    assert body["rank"] == 1
    assert body["flagged"] is False
    assert response["RateLimit-Limit"] == "10"
    alice.refresh_from_db()
    assert alice.score == 5 == ledger_sum(user_id=alice.pk)
    entry = ScoreEntry.objects.get(user=alice)
    assert (entry.score_before, entry.delta, entry.score_after) == (0, 5, 5)
    assert entry.action_id == "click"
    assert len(entry.token_hash) == 64
    assert entry.ip == "127.0.0.1"
    completion = Completion.objects.get(pk=body["completionId"])
    assert completion.score_entry == entry


def test_it_lists_my_completions_newest_first(client_for, alice, click, start, complete) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    ids = [
        complete(client, "click", start(client, "click")).json()["completionId"] for _ in range(3)
    ]
    response = client.get("/api/v1/me/completions/?limit=2")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 3
    assert [c["completionId"] for c in body["results"]] == ids[::-1][:2]


def test_it_refuses_a_forged_token(client_for, alice, click, complete) -> None:  # type: ignore[no-untyped-def]
    response = complete(client_for(alice), "click", "forged.token.value")
    assert response.status_code == 400
    assert code(response) == "token_invalid"


def test_it_refuses_a_tampered_token(client_for, alice, click, start, complete) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    token = start(client, "click")
    tampered = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    assert code(complete(client, "click", tampered)) == "token_invalid"


def test_it_refuses_an_expired_token(client_for, alice, click, complete, settings) -> None:  # type: ignore[no-untyped-def]
    token = past_token(alice, "click", settings.ACTION_TOKEN_TTL_SECONDS + 1)
    response = complete(client_for(alice), "click", token)
    assert response.status_code == 400
    assert code(response) == "token_expired"


def test_it_refuses_another_users_token(client_for, alice, bob, click, start, complete) -> None:  # type: ignore[no-untyped-def]
    token = start(client_for(bob), "click")
    response = complete(client_for(alice), "click", token)
    assert response.status_code == 400
    assert code(response) == "token_mismatch"


def test_it_refuses_a_token_of_another_action(client_for, alice, click, start, complete) -> None:  # type: ignore[no-untyped-def]
    ActionTypeFactory(id="other")
    client = client_for(alice)
    response = complete(client, "other", start(client, "click"))
    assert response.status_code == 400
    assert code(response) == "token_mismatch"


def test_it_refuses_a_replayed_token(client_for, alice, click, start, complete) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    token = start(client, "click")
    assert complete(client, "click", token).status_code == 200
    again = complete(client, "click", token)
    assert again.status_code == 409
    assert code(again) == "token_replayed"
    alice.refresh_from_db()
    assert alice.score == 5


def test_it_refuses_a_completion_before_the_minimum_duration(
    client_for, alice, start, complete
) -> None:  # type: ignore[no-untyped-def]
    ActionTypeFactory(id="quiz", min_duration_seconds=60)
    client = client_for(alice)
    response = complete(client, "quiz", start(client, "quiz"))
    assert response.status_code == 409
    assert code(response) == "too_early"
    assert complete(client, "quiz", past_token(alice, "quiz", 61)).status_code == 200


def test_it_refuses_a_completion_during_the_cooldown(client_for, alice, start, complete) -> None:  # type: ignore[no-untyped-def]
    ActionTypeFactory(id="daily", cooldown_seconds=3600)
    client = client_for(alice)
    assert complete(client, "daily", start(client, "daily")).status_code == 200
    response = complete(client, "daily", start(client, "daily"))
    assert response.status_code == 409
    assert code(response) == "cooldown_active"
    assert 3500 < response.json()["error"]["details"]["retryAfter"] <= 3600


def test_it_refuses_past_the_daily_cap(client_for, alice, start, complete) -> None:  # type: ignore[no-untyped-def]
    ActionTypeFactory(id="capped", daily_cap=2)
    client = client_for(alice)
    for _ in range(2):
        assert complete(client, "capped", start(client, "capped")).status_code == 200
    response = complete(client, "capped", start(client, "capped"))
    assert response.status_code == 409
    assert code(response) == "daily_cap_reached"


def test_it_rate_limits_completions_per_user(
    client_for, alice, click, start, complete, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_USER = "3/m"
    client = client_for(alice)
    for _ in range(3):
        assert complete(client, "click", start(client, "click")).status_code == 200
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 429
    assert code(response) == "rate_limited"
    assert int(response["Retry-After"]) >= 1
    assert response["RateLimit-Remaining"] == "0"


def test_it_rate_limits_completions_per_ip(
    client_for, alice, bob, click, start, complete, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_IP = "2/m"
    assert (
        complete(client_for(alice), "click", start(client_for(alice), "click")).status_code == 200
    )
    assert complete(client_for(bob), "click", start(client_for(bob), "click")).status_code == 200
    response = complete(client_for(alice), "click", start(client_for(alice), "click"))
    assert response.status_code == 429


def test_it_refuses_a_banned_user(client_for, mallory, click, start, complete) -> None:  # type: ignore[no-untyped-def]
    client = client_for(mallory)
    token = start(client, "click")
    mallory.is_banned = True
    mallory.save()
    response = complete(client, "click", token)
    assert response.status_code == 403
    assert code(response) == "user_banned"


def test_it_refuses_what_the_fraud_rules_block(
    client_for, mallory, click, start, complete, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from actions import services
    from fraud.assess import RiskAssessment

    monkeypatch.setattr(
        services, "fraud_assess", lambda **kw: RiskAssessment(score=0.95, rules={"x": 0.95})
    )
    client = client_for(mallory)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 403
    assert code(response) == "fraud_blocked"
    mallory.refresh_from_db()
    assert mallory.score == 0


def test_it_flags_what_the_fraud_rules_flag(
    client_for, mallory, click, start, complete, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from actions import services
    from fraud.assess import RiskAssessment

    monkeypatch.setattr(
        services, "fraud_assess", lambda **kw: RiskAssessment(score=0.6, rules={"x": 0.6})
    )
    client = client_for(mallory)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200
    assert response.json()["flagged"] is True


def test_it_refuses_an_inactive_action(client_for, alice, click, start, complete) -> None:  # type: ignore[no-untyped-def]
    from actions.action_types import action_type_save

    client = client_for(alice)
    token = start(client, "click")
    action_type_save(action_id="click", name=click.name, reward=click.reward, active=False)
    response = complete(client, "click", token)
    assert response.status_code == 409
    assert code(response) == "action_inactive"


def test_it_keeps_action_types_for_a_moment_then_reads_them_again(
    click, settings, django_assert_num_queries
) -> None:  # type: ignore[no-untyped-def]
    from actions.action_types import ActionGeneration, action_types
    from actions.models import ActionType

    settings.ACTION_TYPE_CACHE_SECONDS = 0.3
    generation = ActionGeneration(value=b"g1", known=True)
    with django_assert_num_queries(1):
        assert action_types.get("click", generation=generation).reward == 5
        assert action_types.get("click", generation=generation).reward == 5
    # A change whose generation never reached Redis: seen after the lifetime.
    ActionType.objects.filter(pk="click").update(reward=7)
    time.sleep(0.35)
    with django_assert_num_queries(1):
        assert action_types.get("click", generation=generation).reward == 7
    ActionType.objects.filter(pk="click").update(reward=9)
    with django_assert_num_queries(1):  # a new generation: read again at once
        assert action_types.get("click", generation=ActionGeneration(b"g2", True)).reward == 9
    with django_assert_num_queries(2):  # no generation (Redis failing): every time
        assert action_types.get("click", generation=ActionGeneration()).reward == 9
        assert action_types.get("click", generation=ActionGeneration()).reward == 9


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"actionId", "actionToken"}),
        ({"actionId": "click"}, {"actionToken"}),
        ({"actionId": "no spaces!", "actionToken": "x"}, {"actionId"}),
        ({"actionId": "click", "actionToken": "x", "timestamp": "yesterday"}, {"timestamp"}),
    ],
)
def test_it_reports_invalid_fields(client_for, alice, click, body, fields) -> None:  # type: ignore[no-untyped-def]
    response = client_for(alice).post("/api/v1/actions/complete/", body, format="json")
    assert response.status_code == 400
    assert code(response) == "invalid"
    assert set(response.json()["error"]["details"]["fields"]) == fields


def test_it_requires_login_to_complete(api_client, click) -> None:  # type: ignore[no-untyped-def]
    response = api_client.post("/api/v1/actions/complete/", {}, format="json")
    assert response.status_code == 401


# --- idempotency ------------------------------------------------------------------------


def test_it_replays_the_first_response_for_a_retried_key(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    token = start(client, "click")
    first = complete(client, "click", token, HTTP_IDEMPOTENCY_KEY="retry-1")
    second = complete(client, "click", token, HTTP_IDEMPOTENCY_KEY="retry-1")
    assert first.status_code == second.status_code == 200
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    alice.refresh_from_db()
    assert alice.score == 5
    assert Completion.objects.count() == 1


def test_it_refuses_a_key_reused_with_another_body(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    assert (
        complete(client, "click", start(client, "click"), HTTP_IDEMPOTENCY_KEY="k").status_code
        == 200
    )
    response = complete(client, "click", start(client, "click"), HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 409
    assert code(response) == "idempotency_key_reused"


def test_it_refuses_a_malformed_idempotency_key(client_for, alice, click, start, complete) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    response = complete(client, "click", start(client, "click"), HTTP_IDEMPOTENCY_KEY="x" * 300)
    assert response.status_code == 400


def test_it_forgets_keys_after_their_time_to_live(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    from actions.idempotency import idempotency_expire
    from actions.models import IdempotencyRecord

    client = client_for(alice)
    complete(client, "click", start(client, "click"), HTTP_IDEMPOTENCY_KEY="old")
    IdempotencyRecord.objects.update(created_at=timezone.now() - timedelta(hours=25))
    assert idempotency_expire() == 1
    assert (
        complete(client, "click", start(client, "click"), HTTP_IDEMPOTENCY_KEY="old").status_code
        == 200
    )


def test_it_refuses_a_replay_by_the_unique_nonce_alone(
    client_for, alice, click, start, complete, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    """The database is the last line: with the checks switched off, the nonce key holds."""
    from actions import services

    client = client_for(alice)
    token = start(client, "click")
    assert complete(client, "click", token).status_code == 200
    monkeypatch.setattr(services, "_check_rules", lambda **kw: None)
    response = complete(client, "click", token)
    assert response.status_code == 409
    assert code(response) == "token_replayed"
    alice.refresh_from_db()
    assert alice.score == 5
    assert ScoreEntry.objects.filter(user=alice).count() == 1


@pytest.mark.parametrize("query", ["offset=null", "limit=0", "limit=101", "offset=-1"])
def test_it_refuses_bad_paging_of_my_completions(client_for, alice, query) -> None:  # type: ignore[no-untyped-def]
    response = client_for(alice).get(f"/api/v1/me/completions/?{query}")
    assert response.status_code == 400
    assert code(response) == "invalid"
