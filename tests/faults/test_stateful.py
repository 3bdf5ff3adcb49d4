"""A hypothesis state machine of start, complete, replay, reversal and ban, checked after
every step against a model of the scores and against the invariants of the fault suite.

Bounded in `make test`; `make test-faults` (FAULTS_LONG=1) runs it longer.
"""

from __future__ import annotations

import os
import uuid

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    rule,
)
from rest_framework.test import APIClient

from accounts.models import User
from actions.models import Completion
from actions.services import completion_reverse
from fraud.models import AuditEvent
from fraud.rules import RULES
from fraud.services import user_set_banned
from leaderboard.rebuild import leaderboard_reconcile
from scoreboard.models import ScoreEntry
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.invariants import assert_index, assert_ledger

pytestmark = [
    pytest.mark.quickfaults,
    pytest.mark.timeout(400),
    pytest.mark.django_db(transaction=True),
]

LONG = os.environ.get("FAULTS_LONG") == "1"


class Scoreboard(RuleBasedStateMachine):
    tokens = Bundle("tokens")
    used = Bundle("used")
    accepted = Bundle("accepted")

    def __init__(self) -> None:
        super().__init__()
        run = uuid.uuid4().hex[:6]
        self.admin = UserFactory(username=f"admin-{run}", is_staff=True)
        self.users = [UserFactory(username=f"p{n}-{run}") for n in range(3)]
        self.clients = []
        for user in self.users:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
            self.clients.append(client)
        self.score = [0, 0, 0]
        self.banned = [False, False, False]
        self.accepted_tokens: set[str] = set()
        self.accepted_ids: list[str] = []

    @rule(target=tokens, who=st.integers(0, 2))
    def start(self, who: int):  # type: ignore[no-untyped-def]
        response = self.clients[who].post("/api/v1/actions/click/start/")
        if self.banned[who]:
            assert response.status_code == 403, response.content
            assert response.json()["error"]["code"] == "user_banned"
            return (who, None)
        assert response.status_code == 201, response.content
        return (who, response.json()["actionToken"])

    def _complete(self, who: int, token: str | None):  # type: ignore[no-untyped-def]
        return self.clients[who].post(
            "/api/v1/actions/complete/",
            {"actionId": "click", "actionToken": token or "x"},
            format="json",
        )

    def _submit(self, who: int, token: str | None) -> None:
        """Complete with `token`; the model says what must happen."""
        response = self._complete(who, token)
        if self.banned[who] or token is None:
            assert response.status_code in {400, 403}, response.content
            return
        if token in self.accepted_tokens:
            assert response.status_code == 409, response.content
            assert response.json()["error"]["code"] == "token_replayed"
            return
        if response.status_code == 403:  # the fraud rules may block; nothing is written
            assert response.json()["error"]["code"] == "fraud_blocked"
            return
        assert response.status_code == 200, response.content
        self.accepted_tokens.add(token)
        self.score[who] += 5
        assert response.json()["newScore"] == self.score[who]
        self.accepted_ids.append(response.json()["completionId"])

    @rule(target=used, started=consumes(tokens))
    def complete(self, started):  # type: ignore[no-untyped-def]
        self._submit(*started)
        return started

    @rule(done=used)
    def replay(self, done) -> None:  # type: ignore[no-untyped-def]
        """The same token again: refused if it was accepted; a token refused before (its
        user was banned then) may be accepted once now."""
        self._submit(*done)

    @rule(data=st.data())
    def reverse(self, data) -> None:  # type: ignore[no-untyped-def]
        ids = self.accepted_ids
        if not ids:
            return
        completion_id = data.draw(st.sampled_from(ids))
        completion = Completion.objects.get(pk=completion_id)
        was_reversed = ScoreEntry.objects.filter(reverses=completion.score_entry).exists()
        reversed_now = completion_reverse(completion=completion, admin=self.admin)
        assert reversed_now is (not was_reversed)
        if reversed_now:
            self.score[self.users.index(completion.user)] -= completion.delta

    @rule(who=st.integers(0, 2), banned=st.booleans())
    def ban(self, who: int, banned: bool) -> None:
        changed = user_set_banned(user=self.users[who], banned=banned, admin=self.admin)
        assert changed is (self.banned[who] != banned)
        self.banned[who] = banned

    @invariant()
    def scores_match_the_model_and_the_ledger(self) -> None:
        for user, score in zip(self.users, self.score, strict=True):
            assert User.objects.get(pk=user.pk).score == score
        assert_ledger(users=self.users)

    @invariant()
    def index_matches_postgres_after_reconcile(self) -> None:
        leaderboard_reconcile()
        assert_index()

    @invariant()
    def one_audit_record_per_completion(self) -> None:
        ids = set(Completion.objects.values_list("id", flat=True))
        audited = list(
            AuditEvent.objects.filter(kind=AuditEvent.Kind.COMPLETION_ACCEPTED).values_list(
                "completion_id", flat=True
            )
        )
        assert len(audited) == len(set(audited))
        assert set(audited) == ids


def test_the_state_machine_keeps_every_invariant(settings) -> None:  # type: ignore[no-untyped-def]
    settings.COMPLETION_RATE_PER_USER = "100000/m"
    settings.COMPLETION_RATE_PER_IP = "100000/m"
    settings.FRAUD_RULE_WEIGHTS = dict.fromkeys(RULES, 0.0)
    ActionTypeFactory(id="click", reward=5)
    Scoreboard.TestCase.settings = hsettings(
        max_examples=30 if LONG else 5,
        stateful_step_count=25 if LONG else 15,
        deadline=None,
        derandomize=not LONG,
        suppress_health_check=list(HealthCheck),
    )
    Scoreboard.TestCase().runTest()
