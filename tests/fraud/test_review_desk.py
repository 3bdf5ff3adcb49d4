"""The admins' review desk, through the Django test client as a staff user: every act is
audited with the admin's name, the ledger stays equal to the score, and the live board
follows a ban and a reversal."""

from __future__ import annotations

import json
import time

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.db.models import Sum
from django.test import Client

from accounts.models import Session, User
from actions.models import Completion
from config.asgi import application
from fraud.models import AuditEvent, FraudLog, RiskProfile
from scoreboard.models import ScoreEntry
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def reviewer() -> User:
    return UserFactory(username="reviewer", is_staff=True, is_superuser=True)


@pytest.fixture
def desk(reviewer: User) -> Client:
    client = Client()
    client.force_login(reviewer)
    return client


def completed(user: User, times: int = 1, reward: int = 5) -> list[Completion]:
    """Real completions of `user` through the API."""
    from rest_framework.test import APIClient

    from tests.conftest import access_token_for

    ActionTypeFactory(id="click", reward=reward)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    for _ in range(times):
        token = client.post("/api/v1/actions/click/start/").json()["actionToken"]
        response = client.post(
            "/api/v1/actions/complete/",
            {"actionId": "click", "actionToken": token},
            format="json",
        )
        assert response.status_code == 200, response.content
    return list(Completion.objects.filter(user=user).order_by("created_at"))


def flag(user: User, completion: Completion | None = None, risk: float = 0.6) -> FraudLog:
    return FraudLog.objects.create(
        user=user,
        completion_id=completion.pk if completion else None,
        event=FraudLog.Event.FLAGGED if completion else FraudLog.Event.BLOCKED,
        risk_score=risk,
        rules={"regular_timing": 0.5, "new_account": 0.2},
        reasons={"regular_timing": "even", "new_account": "young"},
        ip="203.0.113.9",
    )


def act(desk: Client, path: str, action: str, ids: list[object]) -> None:
    response = desk.post(
        path, {"action": action, "_selected_action": [str(i) for i in ids]}, follow=True
    )
    assert response.status_code == 200
    assert b"errornote" not in response.content


def ledger_sum(user: User) -> int:
    return ScoreEntry.objects.filter(user=user).aggregate(s=Sum("delta"))["s"] or 0


def last_audit(kind: str) -> AuditEvent:
    return AuditEvent.objects.filter(kind=kind).latest("created_at")


def test_it_lists_filters_and_searches_fraud_logs(desk: Client, mallory, alice) -> None:  # type: ignore[no-untyped-def]
    log = flag(mallory, risk=0.95)
    flag(alice, risk=0.55)
    FraudLog.objects.filter(user=alice).update(rules={"ip_farm": 0.5})
    base = "/admin/fraud/fraudlog/"
    for query, shown, hidden in [
        ("?rule=regular_timing", "mallory", "alice"),
        ("?rule=ip_farm", "alice", "mallory"),
        ("?risk=critical", "mallory", "alice"),
        ("?risk=medium", "alice", "mallory"),
        ("?reviewed=no", "mallory", "nobody"),
        ("?q=mallory", "mallory", "alice"),
        ("?event__exact=blocked", "mallory", "nobody"),
        (f"?created_at__year={log.created_at.year}", "mallory", "nobody"),
    ]:
        page = desk.get(base + query)
        assert page.status_code == 200, query
        assert f">{shown}<" in page.content.decode(), query
        assert f">{hidden}<" not in page.content.decode(), query
    assert desk.get(f"{base}{log.pk}/change/").status_code == 200


def test_it_clears_a_flag_and_audits_who_did(desk: Client, reviewer: User, mallory) -> None:  # type: ignore[no-untyped-def]
    log = flag(mallory)
    act(desk, "/admin/fraud/fraudlog/", "clear_selected", [log.pk])
    log.refresh_from_db()
    assert (log.outcome, log.reviewed_by) == (FraudLog.Outcome.CLEARED, reviewer)
    assert log.reviewed_at is not None
    audit = last_audit(AuditEvent.Kind.FLAG_REVIEWED)
    assert audit.payload["actor"] == "reviewer"
    assert audit.payload["fraudLog"] == log.pk
    # A second clear changes nothing and audits nothing.
    act(desk, "/admin/fraud/fraudlog/", "clear_selected", [log.pk])
    assert AuditEvent.objects.filter(kind=AuditEvent.Kind.FLAG_REVIEWED).count() == 1


def test_it_shows_users_under_review_with_their_history(desk: Client, mallory, alice) -> None:  # type: ignore[no-untyped-def]
    flag(mallory)
    RiskProfile.objects.create(
        user=mallory, status=RiskProfile.Status.UNDER_REVIEW, rolling_risk=0.8, flags_count=3
    )
    page = desk.get("/admin/fraud/reviewuser/?status=under_review").content.decode()
    assert ">mallory<" in page
    assert ">alice<" not in page
    detail = desk.get(f"/admin/fraud/reviewuser/{mallory.pk}/change/").content.decode()
    assert "Risk history" in detail
    assert "regular_timing" in detail
    assert "Under review" in detail
    completions = desk.get(f"/admin/actions/completion/?user__id__exact={mallory.pk}")
    assert completions.status_code == 200


def test_it_bans_and_unbans_through_the_audited_service_and_the_board_follows(
    desk: Client, mallory, alice
) -> None:  # type: ignore[no-untyped-def]
    completed(mallory, times=2)
    completed(alice, times=1)
    Session.objects.create(
        user=mallory, refresh_jti="j1", expires_at="2999-01-01T00:00:00Z", ip="127.0.0.1"
    )
    act(desk, "/admin/fraud/reviewuser/", "ban_selected", [mallory.pk])
    mallory.refresh_from_db()
    assert mallory.is_banned
    assert not Session.objects.filter(user=mallory).active().exists()
    assert last_audit(AuditEvent.Kind.USER_BANNED).payload["actor"] == "reviewer"
    board = Client().get("/api/v1/leaderboard/").json()
    assert [e["username"] for e in board["entries"]] == ["alice"]
    act(desk, "/admin/fraud/reviewuser/", "unban_selected", [mallory.pk])
    mallory.refresh_from_db()
    assert not mallory.is_banned
    assert last_audit(AuditEvent.Kind.USER_UNBANNED).payload["actor"] == "reviewer"
    board = Client().get("/api/v1/leaderboard/").json()
    assert [e["username"] for e in board["entries"]] == ["mallory", "alice"]
    assert mallory.score == ledger_sum(mallory) == 10


def test_it_reverses_chosen_completions_with_compensating_entries(desk: Client, mallory) -> None:  # type: ignore[no-untyped-def]
    first, second, third = completed(mallory, times=3)
    flag(mallory, completion=second)
    act(desk, "/admin/actions/completion/", "reverse_selected", [second.pk, third.pk])
    mallory.refresh_from_db()
    assert mallory.score == ledger_sum(mallory) == 5
    reversals = ScoreEntry.objects.filter(user=mallory, reason=ScoreEntry.Reason.REVERSAL)
    assert {r.reverses_id for r in reversals} == {second.score_entry_id, third.score_entry_id}
    audits = AuditEvent.objects.filter(kind=AuditEvent.Kind.COMPLETION_REVERSED)
    assert {a.payload["actor"] for a in audits} == {"reviewer"}
    assert {a.completion_id for a in audits} == {second.pk, third.pk}
    assert FraudLog.objects.get(completion_id=second.pk).outcome == FraudLog.Outcome.REVERSED
    # Reversing again is refused quietly: no second compensating entry.
    act(desk, "/admin/actions/completion/", "reverse_selected", [second.pk])
    assert mallory.score == ledger_sum(mallory) == 5
    assert reversals.count() == 2
    board = Client().get(f"/api/v1/leaderboard/users/{mallory.pk}/").json()
    assert board["score"] == 5
    assert first.pk


def test_it_puts_a_user_back_to_clear(desk: Client, mallory) -> None:  # type: ignore[no-untyped-def]
    log = flag(mallory)
    RiskProfile.objects.create(
        user=mallory, status=RiskProfile.Status.UNDER_REVIEW, rolling_risk=0.8
    )
    act(desk, "/admin/fraud/reviewuser/", "clear_selected", [mallory.pk])
    profile = RiskProfile.objects.get(user=mallory)
    assert (profile.status, profile.rolling_risk) == (RiskProfile.Status.CLEAR, 0.0)
    log.refresh_from_db()
    assert log.outcome == FraudLog.Outcome.CLEARED
    audit = last_audit(AuditEvent.Kind.PROFILE_CLEARED)
    assert (audit.payload["actor"], audit.payload["previousStatus"]) == ("reviewer", "under_review")


def test_it_does_not_ban_through_the_user_form(desk: Client, mallory) -> None:  # type: ignore[no-untyped-def]
    page = desk.get(f"/admin/accounts/user/{mallory.pk}/change/").content.decode()
    assert 'name="is_banned"' not in page
    assert 'name="banned_at' not in page
    desk.post(
        f"/admin/accounts/user/{mallory.pk}/change/",
        {"username": "mallory", "email": mallory.email, "is_banned": "on", "is_active": "on"},
    )
    mallory.refresh_from_db()
    assert not mallory.is_banned


def test_it_never_edits_or_deletes_audit_events_fraud_logs_or_ledger(desk: Client, mallory) -> None:  # type: ignore[no-untyped-def]
    (completion,) = completed(mallory, times=1)
    log = flag(mallory, completion=completion)
    audit = AuditEvent.objects.create(kind=AuditEvent.Kind.USER_BANNED, user=mallory)
    entry = completion.score_entry
    for path in [
        f"/admin/fraud/auditevent/{audit.pk}/delete/",
        f"/admin/fraud/fraudlog/{log.pk}/delete/",
        f"/admin/scoreboard/scoreentry/{entry.pk}/delete/",
        "/admin/fraud/auditevent/add/",
        "/admin/fraud/fraudlog/add/",
    ]:
        assert desk.get(path).status_code == 403, path
    for changelist, pk in [
        ("/admin/fraud/auditevent/", audit.pk),
        ("/admin/fraud/fraudlog/", log.pk),
        ("/admin/scoreboard/scoreentry/", entry.pk),
    ]:
        assert b"delete_selected" not in desk.get(changelist).content
        desk.post(
            changelist, {"action": "delete_selected", "_selected_action": [pk], "post": "yes"}
        )
    desk.post(f"/admin/fraud/auditevent/{audit.pk}/change/", {"kind": "user.unbanned"})
    assert AuditEvent.objects.filter(pk=audit.pk, kind=AuditEvent.Kind.USER_BANNED).exists()
    assert FraudLog.objects.filter(pk=log.pk).exists()
    assert ScoreEntry.objects.filter(pk=entry.pk).exists()


def test_it_refuses_the_desks_actions_to_staff_without_review_rights(mallory) -> None:  # type: ignore[no-untyped-def]
    clerk = UserFactory(username="clerk", is_staff=True)
    clerk.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_fraudlog", "view_reviewuser"])
    )
    client = Client()
    client.force_login(clerk)
    assert client.get("/admin/fraud/reviewuser/").status_code == 200
    client.post(
        "/admin/fraud/reviewuser/", {"action": "ban_selected", "_selected_action": [mallory.pk]}
    )
    mallory.refresh_from_db()
    assert not mallory.is_banned
    assert not AuditEvent.objects.filter(kind=AuditEvent.Kind.USER_BANNED).exists()


async def test_a_live_viewer_sees_a_ban_and_a_reversal(reviewer: User) -> None:
    mallory = await database_sync_to_async(UserFactory)(username="mallory")
    alice = await database_sync_to_async(UserFactory)(username="alice")
    await database_sync_to_async(completed)(mallory, times=3, reward=10)
    await database_sync_to_async(completed)(alice, times=1, reward=10)
    desk = Client()
    await database_sync_to_async(desk.force_login)(reviewer)
    viewer = WebsocketCommunicator(
        application, "/ws/leaderboard/", headers=[(b"origin", b"http://127.0.0.1")]
    )
    assert (await viewer.connect(timeout=5))[0]

    async def next_board(predicate, timeout: float = 5.0) -> list[dict]:  # type: ignore[no-untyped-def]
        deadline = time.monotonic() + timeout
        while True:
            frame = json.loads(
                await viewer.receive_from(timeout=max(0.05, deadline - time.monotonic()))
            )
            if frame["type"].startswith("leaderboard.") and predicate(frame["entries"]):
                return frame["entries"]

    first = await next_board(lambda entries: True)
    assert [(e["username"], e["score"]) for e in first] == [("mallory", 30), ("alice", 10)]
    last = await database_sync_to_async(
        lambda: Completion.objects.filter(user=mallory).latest("created_at")
    )()
    await database_sync_to_async(act)(
        desk, "/admin/actions/completion/", "reverse_selected", [last.pk]
    )
    reversed_board = await next_board(lambda entries: entries[0]["score"] == 20)
    assert [(e["username"], e["score"]) for e in reversed_board] == [("mallory", 20), ("alice", 10)]
    await database_sync_to_async(act)(
        desk, "/admin/fraud/reviewuser/", "ban_selected", [mallory.pk]
    )
    banned_board = await next_board(lambda entries: len(entries) == 1)
    assert [e["username"] for e in banned_board] == ["alice"]
    await viewer.disconnect()
