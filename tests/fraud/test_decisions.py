"""Allow, flag and block through the complete endpoint, on signals kept in the real Redis;
the assessment's cost on the completion path (no SQL, two Redis round trips)."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from fraud.assess import fraud_assess, fraud_remember
from fraud.models import AuditEvent, FraudLog, RiskProfile
from fraud.rules import PastCompletion
from fraud.signals import RedisSignalStore, device_of, ip_prefix
from scoreboard.models import ScoreEntry

# Committed for real: the audit record and the fraud log are written after commit.
pytestmark = pytest.mark.django_db(transaction=True)

UA = "pytest-client"


def remember_timer(user, *, count: int, every: float = 30.0, action_id: str = "click") -> None:  # type: ignore[no-untyped-def]
    """Give `user` a history of `count` completions exactly `every` seconds apart, the last
    one `every` seconds ago, as a script on a timer leaves it. (Long intervals: the 3 %
    tolerance then absorbs the test's own delay before it completes.)"""
    store, now = RedisSignalStore(), time.time()
    for i in range(count, 0, -1):
        past = PastCompletion(now - i * every, action_id, ip_prefix("127.0.0.1"), device_of(""), 5)
        store.remember(user_id=user.pk, past=past)


def code(response) -> str:  # type: ignore[no-untyped-def]
    return response.json()["error"]["code"]


def test_it_allows_a_completion_below_the_flag_threshold(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200
    assert response.json()["flagged"] is False
    assert not FraudLog.objects.exists()
    assert not RiskProfile.objects.exists()
    audit = AuditEvent.objects.get(kind=AuditEvent.Kind.COMPLETION_ACCEPTED)
    assert audit.payload["assessed"] is True
    assert audit.payload["rules"] == {"new_account": pytest.approx(0.2, abs=0.01)}


def test_it_flags_a_completion_at_the_flag_threshold(
    client_for, mallory, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    remember_timer(mallory, count=4)
    client = client_for(mallory)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["flagged"] is True
    log = FraudLog.objects.get(event=FraudLog.Event.FLAGGED)
    assert str(log.completion_id) == body["completionId"]
    assert 0.5 <= log.risk_score < 0.9
    assert set(log.rules) == {"regular_timing", "new_account"}
    assert "intervals" in log.reasons["regular_timing"]
    assert log.ip == "127.0.0.1"
    # The flag queued a review of the user's history (run eagerly here).
    review = FraudLog.objects.get(event=FraudLog.Event.REVIEWED)
    assert review.user_id == mallory.pk
    profile = RiskProfile.objects.get(user=mallory)
    assert profile.status == RiskProfile.Status.WATCH
    assert (profile.flags_count, profile.blocks_count) == (1, 0)
    assert profile.last_reviewed_at is not None
    mallory.refresh_from_db()
    assert mallory.score == 5  # flagged completions count


def test_it_blocks_a_completion_at_the_block_threshold(
    client_for, mallory, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    remember_timer(mallory, count=12)
    client = client_for(mallory)
    token = start(client, "click")
    response = complete(client, "click", token)
    assert response.status_code == 403
    error = response.json()["error"]
    assert error["code"] == "fraud_blocked"
    # The client is told why, never how much each rule weighs.
    assert error["details"]["reasons"]
    assert all(isinstance(reason, str) for reason in error["details"]["reasons"])
    assert set(error["details"]) == {"reasons"}
    mallory.refresh_from_db()
    assert mallory.score == 0
    assert not ScoreEntry.objects.filter(user=mallory).exists()
    log = FraudLog.objects.get(event=FraudLog.Event.BLOCKED)
    assert log.completion_id is None
    assert log.risk_score >= 0.9
    assert RiskProfile.objects.get(user=mallory).blocks_count == 1
    # The same token sent again: refused again, logged once.
    assert complete(client, "click", token).status_code == 403
    assert FraudLog.objects.filter(event=FraudLog.Event.BLOCKED).count() == 1
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.COMPLETION_BLOCKED).count() == 1


def test_it_takes_thresholds_and_weights_from_settings(
    client_for, mallory, click, start, complete, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.FRAUD_RULE_WEIGHTS = {**settings.FRAUD_RULE_WEIGHTS, "new_account": 0.95}
    client = client_for(mallory)
    assert code(complete(client, "click", start(client, "click"))) == "fraud_blocked"
    settings.FRAUD_BLOCK_THRESHOLD = 0.99
    assert complete(client, "click", start(client, "click")).json()["flagged"] is True
    settings.FRAUD_RULE_WEIGHTS = {**settings.FRAUD_RULE_WEIGHTS, "new_account": 0.0}
    assert complete(client, "click", start(client, "click")).json()["flagged"] is False


def test_it_assesses_with_no_sql_and_two_redis_round_trips(
    mallory, django_assert_num_queries, redis_calls
) -> None:  # type: ignore[no-untyped-def]
    remember_timer(mallory, count=6)
    redis_calls.clear()
    now = timezone.now()
    with django_assert_num_queries(0):
        risk = fraud_assess(
            user=mallory,
            action_id="click",
            reward=5,
            cooldown_seconds=0,
            min_duration_seconds=0,
            ip="127.0.0.1",
            user_agent=UA,
            now=now,
        )
        fraud_remember(user_id=mallory.pk, action_id="click", delta=5, risk=risk, at=now)
    assert len(redis_calls) == 2, redis_calls
    assert "regular_timing" in risk.rules


def test_it_costs_the_completion_path_no_query_of_its_own(
    client_for, alice, click, start, complete, django_assert_max_num_queries
) -> None:  # type: ignore[no-untyped-def]
    """A completion below the flag threshold runs as many queries as without the rules."""
    client = client_for(alice)
    complete(client, "click", start(client, "click"))  # warm caches
    token = start(client, "click")
    with django_assert_max_num_queries(20) as captured:
        assert complete(client, "click", token).status_code == 200
    sql = " ".join(query["sql"] for query in captured.captured_queries)
    assert "fraud_fraudlog" not in sql
    assert "fraud_riskprofile" not in sql


def test_it_accepts_unassessed_completions_when_redis_is_down(
    client_for, alice, click, start, complete, redis_down
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200
    assert response.json()["flagged"] is False
    audit = AuditEvent.objects.get(kind=AuditEvent.Kind.COMPLETION_ACCEPTED)
    assert audit.payload["assessed"] is False
    assert set(audit.payload["rules"]) == {"new_account"}


def test_it_queues_a_review_of_unassessed_completions_in_the_sweep(
    client_for, alice, click, start, complete, redis_down, django_capture_on_commit_callbacks
) -> None:  # type: ignore[no-untyped-def]
    from fraud.review import review_sweep

    client = client_for(alice)
    complete(client, "click", start(client, "click"))
    with django_capture_on_commit_callbacks(execute=True):
        assert review_sweep(now=timezone.now() + timedelta(seconds=1)) == 1
    log = FraudLog.objects.get(event=FraudLog.Event.REVIEWED)
    assert log.user_id == alice.pk
    assert RiskProfile.objects.get(user=alice).last_reviewed_at is not None


def _flag(user, risk: float = 0.6) -> FraudLog:  # type: ignore[no-untyped-def]
    """One flagged completion's log, recorded and committed as the completion does."""
    import uuid

    from django.db import transaction

    from fraud.assess import RiskAssessment, fraud_log_flagged

    assessment = RiskAssessment(score=risk, rules={"regular_timing": risk}, reasons={})
    with transaction.atomic():
        return fraud_log_flagged(
            user_id=user.pk,
            completion_id=uuid.uuid4(),
            risk=assessment,
            ip="127.0.0.1",
            user_agent=UA,
            details={"actionId": "click"},
        )


def test_a_flag_writes_its_log_and_profile_in_one_statement(mallory, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    import fraud.assess

    monkeypatch.setattr(fraud.assess, "reviews_due_queue", lambda **_: None)  # its own SQL
    with CaptureQueriesContext(connection) as captured:
        log = _flag(mallory, risk=0.6)
    fraud = [q["sql"] for q in captured if "fraud_" in q["sql"]]
    expected = 1 if connection.vendor == "postgresql" else 3
    assert len(fraud) == expected, fraud
    stored = FraudLog.objects.get(pk=log.pk)
    assert (stored.event, stored.risk_score, stored.user_agent) == ("flagged", 0.6, UA)
    assert stored.details["actionId"] == "click"
    assert stored.created_at is not None
    profile = RiskProfile.objects.get(user=mallory)
    assert profile.status == RiskProfile.Status.WATCH
    assert (profile.flags_count, profile.blocks_count) == (1, 0)
    assert profile.rolling_risk == pytest.approx(0.6 * 0.3)
    assert profile.last_flagged_at == stored.created_at

    # A second flag rolls the risk on and counts; a profile under review stays so.
    RiskProfile.objects.filter(user=mallory).update(status=RiskProfile.Status.UNDER_REVIEW)
    _flag(mallory, risk=1.0)
    profile.refresh_from_db()
    assert profile.status == RiskProfile.Status.UNDER_REVIEW
    assert profile.flags_count == 2
    assert profile.rolling_risk == pytest.approx(0.6 * 0.3 * 0.7 + 0.3)


def test_flags_ask_for_reviews_once_per_user_and_window(mallory, alice, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import fraud.assess

    asked: list[object] = []
    monkeypatch.setattr(fraud.assess, "reviews_due_queue", lambda *, at: asked.append(at))
    logs = [_flag(mallory) for _ in range(5)]
    windows = {fraud.assess.review_window(log.created_at) for log in logs}
    # Once per window the flags fell in (two if a minute turned mid-test), not five.
    assert len(asked) == len(windows)
    _flag(alice)
    assert len(asked) == len(windows) + 1

    # The profile's last flag is in an earlier window: the next flag asks again.
    earlier = timezone.now() - timedelta(minutes=2)
    RiskProfile.objects.filter(user=mallory).update(last_flagged_at=earlier)
    asked.clear()
    _flag(mallory)
    assert len(asked) == 1


def test_a_process_asks_for_one_batch_of_reviews_a_slot(monkeypatch, settings) -> None:  # type: ignore[no-untyped-def]
    import fraud.assess

    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.FRAUD_REVIEW_BATCH_SECONDS = 5.0
    queued: list[tuple[str, float | None]] = []
    monkeypatch.setattr(
        fraud.assess,
        "_queue",
        lambda name, *, countdown=None, **_: queued.append((name, countdown)),
    )
    monkeypatch.setattr(fraud.assess, "_batch_asked", {})
    start = timezone.now()
    slot_start = start - timedelta(seconds=start.timestamp() % 5)
    fraud.assess.reviews_due_queue(at=slot_start)
    fraud.assess.reviews_due_queue(at=slot_start + timedelta(seconds=4.9))
    assert [name for name, _ in queued] == ["fraud.reviews_due"]
    # It runs when the slot ends, after every flag of the slot has committed.
    assert queued[0][1] is not None
    assert 0 <= queued[0][1] <= 5.0
    fraud.assess.reviews_due_queue(at=slot_start + timedelta(seconds=5))
    assert len(queued) == 2
    # Each batch task has its slot: the alerts' is asked for on its own.
    fraud.assess.alerts_due_queue(at=slot_start)
    assert [name for name, _ in queued] == ["fraud.reviews_due"] * 2 + ["fraud.alerts_send"]


def test_a_batch_reviews_every_user_flagged_since_their_last_review(mallory, alice, bob) -> None:  # type: ignore[no-untyped-def]
    from fraud.review import reviews_due

    now = timezone.now()
    RiskProfile.objects.create(user=mallory, status="watch", last_flagged_at=now)
    RiskProfile.objects.create(
        user=alice, status="watch", last_flagged_at=now, last_reviewed_at=now - timedelta(days=1)
    )
    RiskProfile.objects.create(  # reviewed since their last flag: not due
        user=bob, status="watch", last_flagged_at=now - timedelta(minutes=5), last_reviewed_at=now
    )
    assert reviews_due(now=now + timedelta(seconds=1)) == 2
    reviewed = set(
        FraudLog.objects.filter(event=FraudLog.Event.REVIEWED).values_list("user_id", flat=True)
    )
    assert reviewed == {mallory.pk, alice.pk}
    assert reviews_due(now=now + timedelta(seconds=2)) == 0  # reviewed since
