"""The review desk's page of one user and its acts, through the Django test client: a user
flagged by real completions through the API, the page read as a reviewer reads it, and
each act confirmed (what it changes), done with a note, audited, and refused to staff
without review rights."""

from __future__ import annotations

import re
import time

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import User
from actions.models import Completion
from fraud.audit import audit_drain
from fraud.models import AuditEvent, FraudLog, RiskProfile
from fraud.rules import PastCompletion
from fraud.signals import RedisSignalStore, device_of, ip_prefix
from scoreboard.models import ScoreEntry
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def reviewer() -> User:
    return UserFactory(username="reviewer", is_staff=True, is_superuser=True)


@pytest.fixture
def desk(reviewer: User) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def scripted(user: User, *, times: int = 9, every: float = 0.3) -> list[int]:
    """`user` completes `click` on a timer through the API, as the issue's script did,
    until the rules block it (about the 7th; the rate limit allows 10 a minute); returns
    the statuses. The audit outbox is drained as the worker would."""
    ActionTypeFactory(id="click", reward=10)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    statuses = []
    # The first completion warms the server's first-use paths (the board's index is built
    # then) off the beat; the timer starts after it.
    token = client.post("/api/v1/actions/click/start/").json()["actionToken"]
    first = client.post(
        "/api/v1/actions/complete/", {"actionId": "click", "actionToken": token}, format="json"
    )
    statuses.append(first.status_code)
    begin = time.monotonic() + every
    for i in range(times - 1):
        # The token first, then the completion on the timer's beat: the intervals the
        # rules see are the timer's, whatever the start request cost on a busy machine.
        token = client.post("/api/v1/actions/click/start/").json()["actionToken"]
        time.sleep(max(0.0, begin + i * every - time.monotonic()))
        response = client.post(
            "/api/v1/actions/complete/", {"actionId": "click", "actionToken": token}, format="json"
        )
        statuses.append(response.status_code)
        if response.status_code == 403:
            break
    audit_drain()
    return statuses


def desk_page(desk: Client, user: User) -> str:
    response = desk.get(f"/admin/fraud/reviewuser/{user.pk}/change/")
    assert response.status_code == 200
    return response.content.decode()


def act_url(user: User, act: str) -> str:
    return f"/admin/fraud/reviewuser/{user.pk}/act/{act}/"


def timer_then_complete(user: User, *, count: int = 15, every: float = 0.3) -> int:
    """Add `count` completions exactly `every` seconds apart, the last one `every` ago, to
    the user's fraud history (as the script would have left them, without the jitter a
    loaded machine adds to real requests), then complete once more through the API. The
    token is started first, so the history's beat ends just before the completion."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    token = client.post("/api/v1/actions/click/start/").json()["actionToken"]
    store, now = RedisSignalStore(), time.time()
    for i in range(count, 0, -1):
        past = PastCompletion(now - i * every, "click", ip_prefix("127.0.0.1"), device_of(""), 10)
        store.remember(user_id=user.pk, past=past)
    response = client.post(
        "/api/v1/actions/complete/", {"actionId": "click", "actionToken": token}, format="json"
    )
    audit_drain()
    return response.status_code


@pytest.fixture
def cheater(db, settings) -> User:  # type: ignore[no-untyped-def]
    user = UserFactory(username="mallory")
    statuses = scripted(user)
    assert 200 in statuses, statuses
    # A busy machine's jitter can hide the timer from the rules: then the exact beat is
    # given to the history, and the completion after it is flagged with the block
    # threshold out of reach, or blocked with the block threshold at the flag threshold
    # (what fired is the rules' own finding either way). The rate limit is raised for it.
    settings.COMPLETION_RATE_PER_USER = "1000/m"
    block = settings.FRAUD_BLOCK_THRESHOLD
    flagged = FraudLog.objects.filter(user=user, event=FraudLog.Event.FLAGGED)
    if not flagged.exists():
        settings.FRAUD_BLOCK_THRESHOLD = 1.01
        assert timer_then_complete(user) == 200
    if not FraudLog.objects.filter(user=user, event=FraudLog.Event.BLOCKED).exists():
        settings.FRAUD_BLOCK_THRESHOLD = settings.FRAUD_FLAG_THRESHOLD
        assert timer_then_complete(user) == 403
    settings.FRAUD_BLOCK_THRESHOLD = block
    assert flagged.exists()
    assert FraudLog.objects.filter(user=user, event=FraudLog.Event.BLOCKED).exists()
    return user


def test_the_page_says_why_in_words_without_raw_ids_or_json(desk: Client, cheater: User) -> None:
    page = desk_page(desk, cheater)
    assert "Why mallory is on the desk" in page
    assert re.search(r"rolling risk \d+ %", page)
    # The rules' own reasons, labelled, with percentages rather than JSON.
    assert "Timed like a script" in page
    assert re.search(r"of \d+ intervals within 0\.\d\ds of", page)
    assert re.search(r"account [\d.]+ (s|min) old", page)
    assert re.search(r"\d+ completions in \d+\.\d s, a median of 0\.\d s apart", page)
    assert "An ordinary player" in page
    assert '<meter min="0" max="100"' in page
    assert '{"' not in page
    assert "&quot;request_frequency&quot;" not in page
    assert "Required. 150 characters" not in page
    assert not re.search(r"\d\.\d{5,}", page)  # numbers rounded
    # No UUID as a title or text; ids live only in form values and links.
    visible = re.sub(r'(value|href|action)="[^"]*"', "", page)
    assert not UUID.search(visible), UUID.search(visible)
    # The timeline: time, action, points, decision, IP and device.
    for decision in ("allowed", "flagged", "blocked"):
        assert f'desk-decision-{decision}">{decision}<' in page
    assert "127.0.0.1" in page
    for act in ("clear", "watch", "ban"):
        assert f'href="{act_url(cheater, act)}"' in page
    assert 'name="completions"' in page  # reversible completions have boxes


def test_strings_are_readable(cheater: User) -> None:
    log = FraudLog.objects.filter(user=cheater).latest("created_at")
    assert re.fullmatch(
        r"Completion (blocked|flagged): mallory, risk \d+%, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d",
        str(log),
    )
    assert re.fullmatch(r"mallory: Watch, rolling risk \d+%", str(cheater.risk_profile))
    event = AuditEvent.objects.filter(user=cheater).first()
    assert event is not None
    assert str(event).startswith(f"{event.get_kind_display()}: mallory, ")
    assert not UUID.search(str(log) + str(cheater.risk_profile) + str(event))


def test_the_desk_list_counts_users_by_status_and_sorts_by_risk_and_time(
    desk: Client, reviewer: User
) -> None:
    for name, status, risk in [
        ("ann", "watch", 0.6),
        ("ben", "under_review", 0.9),
        ("cat", "watch", 0.7),
    ]:
        RiskProfile.objects.create(
            user=UserFactory(username=name), status=status, rolling_risk=risk
        )
    page = desk.get("/admin/fraud/reviewuser/").content.decode()
    counts = {
        label: count
        for count, label in re.findall(r"<strong>(\d+)</strong> ([A-Za-z ]+)</a>", page)
    }
    assert (counts["Watch"], counts["Under review"], counts["Banned"]) == ("2", "1", "0")
    ordered = desk.get("/admin/fraud/reviewuser/?o=3").content.decode()  # rolling risk, up
    assert ordered.index(">ann<") < ordered.index(">cat<") < ordered.index(">ben<")
    assert desk.get("/admin/fraud/reviewuser/?o=-6").status_code == 200  # last flagged
    logs = desk.get("/admin/fraud/fraudlog/?o=-4").status_code  # by risk
    assert logs == 200


def test_a_fraud_log_links_to_the_users_desk_page(desk: Client, cheater: User) -> None:
    log = FraudLog.objects.filter(user=cheater).first()
    assert log is not None
    page = desk.get(f"/admin/fraud/fraudlog/{log.pk}/change/").content.decode()
    assert f'href="/admin/fraud/reviewuser/{cheater.pk}/change/"' in page
    assert "mallory on the review desk" in page
    assert "<meter" in page
    assert '{"' not in page


@pytest.mark.parametrize("act", ["clear", "watch", "ban", "unban", "reverse"])
def test_staff_without_review_rights_get_403_on_every_act(cheater: User, act: str) -> None:
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_fraudlog", "view_reviewuser"])
    )
    client = Client()
    client.force_login(clerk)
    page = desk_page(client, cheater)
    assert "/act/" not in page
    assert "You may look but not act" in page
    assert client.get(act_url(cheater, act)).status_code == 403
    assert client.post(act_url(cheater, act), {"note": "sneaky"}).status_code == 403
    # Not staff at all: the admin's login.
    assert Client().get(act_url(cheater, act)).status_code == 302
    cheater.refresh_from_db()
    assert not cheater.is_banned
    assert not AuditEvent.objects.filter(payload__actor="clerk").exists()


def test_acts_need_csrf(reviewer: User, cheater: User) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(reviewer)
    assert client.post(act_url(cheater, "ban"), {"note": "no token"}).status_code == 403
    cheater.refresh_from_db()
    assert not cheater.is_banned


def test_ban_confirms_what_changes_requires_a_note_and_audits_it(
    desk: Client, cheater: User
) -> None:
    page = desk.get(act_url(cheater, "ban")).content.decode()
    assert "Ban mallory?" in page
    assert re.search(
        r"Off the board at once: now rank 1 with [\d,]+ points; after: not listed", page
    )
    assert "open fraud logs closed" in page
    assert "csrfmiddlewaretoken" in page
    refused = desk.post(act_url(cheater, "ban"), {"note": "  "})
    assert refused.status_code == 200
    assert "the note goes into the audit record" in refused.content.decode()
    cheater.refresh_from_db()
    assert not cheater.is_banned
    done = desk.post(act_url(cheater, "ban"), {"note": "a script on a 0.3 s timer"})
    assert done.status_code == 302
    assert done["Location"] == f"/admin/fraud/reviewuser/{cheater.pk}/change/"
    cheater.refresh_from_db()
    assert cheater.is_banned
    audit = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_BANNED, user=cheater)
    assert audit.payload["actor"] == "reviewer"
    assert audit.payload["note"] == "a script on a 0.3 s timer"
    record = desk.get(f"/admin/fraud/auditevent/{audit.pk}/change/").content.decode()
    assert re.search(r"User banned: mallory by reviewer, \d{4}-", record)
    assert "a script on a 0.3 s timer" in record
    board = Client().get("/api/v1/leaderboard/").json()
    assert "mallory" not in [e["username"] for e in board["entries"]]
    page = desk_page(desk, cheater)
    assert "a script on a 0.3 s timer" in page  # in the page's decisions
    assert f'href="{act_url(cheater, "unban")}"' in page
    assert f'href="{act_url(cheater, "ban")}"' not in page


def test_unban_confirms_the_board_position_and_audits_the_note(desk: Client, cheater: User) -> None:
    desk.post(act_url(cheater, "ban"), {"note": "script"})
    page = desk.get(act_url(cheater, "unban")).content.decode()
    assert re.search(r"Back on the board with [\d,]+ points: about rank 1", page)
    assert desk.post(act_url(cheater, "unban"), {"note": ""}).status_code == 200
    assert desk.post(act_url(cheater, "unban"), {"note": "false alarm"}).status_code == 302
    cheater.refresh_from_db()
    assert not cheater.is_banned
    audit = AuditEvent.objects.get(kind=AuditEvent.Kind.USER_UNBANNED, user=cheater)
    assert (audit.payload["actor"], audit.payload["note"]) == ("reviewer", "false alarm")


def test_clear_confirms_and_audits_the_note(desk: Client, cheater: User) -> None:
    open_logs = FraudLog.objects.filter(user=cheater, reviewed_at__isnull=True).count()
    page = desk.get(act_url(cheater, "clear")).content.decode()
    assert "Status: Watch → Clear" in page
    assert f"{open_logs} open fraud logs closed as “Cleared: no fraud”" in page
    assert desk.post(act_url(cheater, "clear"), {}).status_code == 200
    assert RiskProfile.objects.get(user=cheater).status == RiskProfile.Status.WATCH
    assert desk.post(act_url(cheater, "clear"), {"note": "a fast player"}).status_code == 302
    profile = RiskProfile.objects.get(user=cheater)
    assert (profile.status, profile.rolling_risk) == (RiskProfile.Status.CLEAR, 0.0)
    audit = AuditEvent.objects.get(kind=AuditEvent.Kind.PROFILE_CLEARED, user=cheater)
    assert (audit.payload["note"], audit.payload["previousStatus"]) == ("a fast player", "watch")


def test_watch_puts_a_cleared_user_back_on_watch_with_a_note(desk: Client, cheater: User) -> None:
    desk.post(act_url(cheater, "clear"), {"note": "looked fine"})
    page = desk.get(act_url(cheater, "watch")).content.decode()
    assert "Status: Clear → Watch" in page
    assert desk.post(act_url(cheater, "watch"), {"note": ""}).status_code == 200
    assert RiskProfile.objects.get(user=cheater).status == RiskProfile.Status.CLEAR
    assert desk.post(act_url(cheater, "watch"), {"note": "again at night"}).status_code == 302
    assert RiskProfile.objects.get(user=cheater).status == RiskProfile.Status.WATCH
    audit = AuditEvent.objects.get(kind=AuditEvent.Kind.PROFILE_WATCHED, user=cheater)
    assert audit.payload == {
        "actor": "reviewer",
        "previousStatus": "clear",
        "note": "again at night",
    }


def test_reverse_confirms_points_and_rank_and_audits_the_note(desk: Client, cheater: User) -> None:
    alice = UserFactory(username="alice")
    scripted(alice, times=1)
    cheater.refresh_from_db()
    flagged = FraudLog.objects.filter(user=cheater, event=FraudLog.Event.FLAGGED).first()
    assert flagged is not None
    assert flagged.completion_id is not None
    plain = Completion.objects.filter(user=cheater, flagged=False).order_by("created_at").first()
    assert plain is not None
    chosen = [str(flagged.completion_id), str(plain.pk)]
    chooser = desk.get(act_url(cheater, "reverse")).content.decode()
    assert "Choose the completions to reverse" in chooser
    assert chooser.count('type="checkbox" name="completions"') >= 2
    query = "&".join(f"completions={c}" for c in chosen)
    page = desk.get(f"{act_url(cheater, 'reverse')}?{query}").content.decode()
    assert "Reverse completions of mallory?" in page
    after = cheater.score - 20
    assert "Points removed: 20 (2 completions" in page
    assert f"Score: {cheater.score:,} → {after:,}; board: rank 1 → about rank 1" in page
    # The page lists what the POST will reverse, and nothing else.
    for completion_id in chosen:
        assert f'type="hidden" name="completions" value="{completion_id}"' in page
    assert 'type="checkbox"' not in page
    # A note is required, and so is a choice.
    assert desk.post(act_url(cheater, "reverse"), {"completions": chosen}).status_code == 200
    missing = desk.post(act_url(cheater, "reverse"), {"note": "script"}).content.decode()
    assert "Choose at least one completion" in missing
    assert ScoreEntry.objects.filter(user=cheater, reason="reversal").count() == 0
    done = desk.post(act_url(cheater, "reverse"), {"completions": chosen, "note": "timer"})
    assert done.status_code == 302
    cheater.refresh_from_db()
    assert cheater.score == after
    audits = AuditEvent.objects.filter(kind=AuditEvent.Kind.COMPLETION_REVERSED, user=cheater)
    assert {str(a.completion_id) for a in audits} == set(chosen)
    assert {(a.payload["actor"], a.payload["note"]) for a in audits} == {("reviewer", "timer")}
    flagged.refresh_from_db()
    assert flagged.outcome == FraudLog.Outcome.REVERSED
    # Reversed ones lose their box; a second reversal of them cannot be chosen.
    page = desk_page(desk, cheater)
    for completion_id in chosen:
        assert f'value="{completion_id}"' not in page
    again = desk.post(act_url(cheater, "reverse"), {"completions": chosen, "note": "again"})
    assert again.status_code == 200
    assert cheater.score == User.objects.get(pk=cheater.pk).score


def test_an_unknown_act_or_user_is_404(desk: Client, cheater: User) -> None:
    assert desk.get(act_url(cheater, "delete")).status_code == 404
    assert desk.get("/admin/fraud/reviewuser/not-a-uuid/act/ban/").status_code == 404
