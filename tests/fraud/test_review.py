"""The deeper review of a user's history, escalation, the sweep, and the alerts to the
security team (mail and a webhook on a real local HTTP server), one summary per window."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from accounts.models import User
from fraud.alerts import alerts_send
from fraud.models import AuditEvent, FraudLog, RiskProfile
from fraud.review import history_assess, user_review
from scoreboard.models import ScoreEntry
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

NOW = datetime.now(tz=UTC)


def history(
    user: User, times: list[datetime], ips: list[str] | None = None, delta: int = 5
) -> None:
    """Ledger entries of completions at `times` (test data written straight to the ledger)."""
    score = 0
    rows = []
    for i, at in enumerate(sorted(times)):
        rows.append(
            ScoreEntry(
                user=user,
                delta=delta,
                score_before=score,
                score_after=score + delta,
                reason=ScoreEntry.Reason.COMPLETION,
                action_id="click",
                ip=(ips or ["203.0.113.7"])[i % len(ips or ["x"])],
                created_at=at,
            )
        )
        score += delta
    ScoreEntry.objects.bulk_create(rows)
    User.objects.filter(pk=user.pk).update(score=score)


def bot_times(days: float = 2, every: timedelta = timedelta(minutes=10)) -> list[datetime]:
    count = int(timedelta(days=days) / every)
    return [NOW - every * i for i in range(1, count + 1)]


def person_times(days: int = 3, per_day: int = 12, seed: int = 3) -> list[datetime]:
    """Evenings and weekends of a person: daytime hours only, irregular gaps."""
    rng = random.Random(seed)
    times = []
    for day in range(1, days + 1):
        start = (NOW - timedelta(days=day)).replace(hour=17, minute=0, second=0)
        times.extend(start + timedelta(seconds=rng.uniform(0, 4 * 3600)) for _ in range(per_day))
    return times


def test_it_scores_a_script_running_day_and_night(mallory) -> None:  # type: ignore[no-untyped-def]
    history(mallory, bot_times())
    risk = history_assess(user=mallory)
    assert {"hour_spread", "interval_regularity"} <= set(risk.rules)
    assert risk.score >= 0.7


def test_it_leaves_a_person_alone(alice) -> None:  # type: ignore[no-untyped-def]
    history(alice, person_times())
    risk = history_assess(user=alice)
    assert risk.score < 0.5, risk.rules


def test_it_notices_many_networks(mallory) -> None:  # type: ignore[no-untyped-def]
    history(mallory, person_times(), ips=[f"198.51.{n}.1" for n in range(12)])
    risk = history_assess(user=mallory)
    assert risk.rules["ip_diversity"] > 0.3


def test_it_weighs_score_growth_against_the_population(mallory) -> None:  # type: ignore[no-untyped-def]
    for n in range(30):
        history(UserFactory(username=f"player-{n}"), person_times(days=1, per_day=4, seed=n))
    history(mallory, person_times(days=1, per_day=12), delta=50)
    risk = history_assess(user=mallory)
    assert risk.rules["score_growth"] > 0.3


def test_it_escalates_once_and_alerts_the_security_team(mallory, settings) -> None:  # type: ignore[no-untyped-def]
    settings.ADMINS = [("Security", "security@example.com")]
    history(mallory, bot_times())
    RiskProfile.objects.create(user=mallory, status=RiskProfile.Status.WATCH)
    first = user_review(user_id=mallory.pk, key="flag:1")
    again = user_review(user_id=mallory.pk, key="flag:1")
    assert first is not None
    assert again is None  # the same review twice changes nothing
    assert FraudLog.objects.filter(event=FraudLog.Event.REVIEWED).count() == 1
    assert FraudLog.objects.filter(event=FraudLog.Event.ESCALATED).count() == 1
    assert RiskProfile.objects.get(user=mallory).status == RiskProfile.Status.UNDER_REVIEW
    audit = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_ESCALATED)
    assert audit.payload["actor"] == "fraud review"
    assert len(mail.outbox) == 1
    assert "1 users escalated" in mail.outbox[0].subject
    assert "mallory" in mail.outbox[0].body
    # A later review of the same user does not escalate (or alert) again.
    user_review(user_id=mallory.pk, key="flag:2")
    assert FraudLog.objects.filter(event=FraudLog.Event.ESCALATED).count() == 1


def test_it_sweeps_flagged_users_not_reviewed_since(mallory, alice) -> None:  # type: ignore[no-untyped-def]
    from fraud.review import review_sweep

    now = timezone.now()
    RiskProfile.objects.create(user=mallory, status="watch", last_flagged_at=now)
    RiskProfile.objects.create(
        user=alice, status="watch", last_flagged_at=now - timedelta(minutes=5), last_reviewed_at=now
    )
    assert review_sweep(now=now) == 1
    assert FraudLog.objects.filter(event=FraudLog.Event.REVIEWED).get().user_id == mallory.pk
    assert review_sweep(now=now) == 0  # reviewed since


class Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []
    delay = 0.0

    def do_POST(self) -> None:
        time.sleep(self.delay)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook(settings) -> Iterator[type[Webhook]]:  # type: ignore[no-untyped-def]
    """A real HTTP server on a loopback port that records what it is sent."""
    handler = type("Hook", (Webhook,), {"received": [], "delay": 0.0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.FRAUD_ALERT_WEBHOOK_URL = f"http://127.0.0.1:{server.server_address[1]}/hook"
    settings.FRAUD_ALERT_WEBHOOK_TIMEOUT = 1.0
    yield handler
    server.shutdown()
    server.server_close()


def test_a_flood_of_blocks_sends_one_summary_per_window(
    client_for, mallory, click, start, complete, settings, webhook
) -> None:  # type: ignore[no-untyped-def]
    settings.ADMINS = [("Security", "security@example.com")]
    settings.FRAUD_ALERT_WINDOW_SECONDS = 4
    settings.FRAUD_RULE_WEIGHTS = {**settings.FRAUD_RULE_WEIGHTS, "new_account": 0.95}
    settings.COMPLETION_RATE_PER_USER = "1000/m"
    client = client_for(mallory)
    began = time.monotonic()
    for _ in range(12):
        assert complete(client, "click", start(client, "click")).status_code == 403
    assert time.monotonic() - began < 4, "the flood outlasted the window"
    assert len(mail.outbox) == 1
    assert len(webhook.received) == 1
    assert webhook.received[0]["blocked"] == 1
    assert webhook.received[0]["users"] == [{"username": "mallory", "events": 1}]
    time.sleep(4.2)  # the window passes; beat runs the task then
    # The other 11 blocks in one summary.
    assert alerts_send() == 11
    assert len(mail.outbox) == 2
    assert "11 blocked completions" in mail.outbox[1].subject
    assert webhook.received[1]["blocked"] == 11
    assert len(webhook.received) == 2
    told = FraudLog.objects.filter(event__in=["blocked", "escalated"])
    assert not told.filter(alerted_at__isnull=True).exists()


def test_a_slow_webhook_does_not_stop_the_mail(mallory, settings, webhook) -> None:  # type: ignore[no-untyped-def]
    settings.ADMINS = [("Security", "security@example.com")]
    webhook.delay = 3.0
    FraudLog.objects.create(user=mallory, event=FraudLog.Event.BLOCKED, risk_score=0.95)
    began = time.monotonic()
    assert alerts_send() == 1
    assert time.monotonic() - began < 2.5
    assert len(mail.outbox) == 1
