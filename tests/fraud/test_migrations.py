"""The fraud app's migrations keep their data."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("fraud", "0004_auditevent_login_kinds")]
AFTER = [("fraud", "0005_fraudlog_completion_by_id")]


def test_it_keeps_each_fraud_log_s_completion_id_when_the_foreign_key_goes() -> None:
    executor = MigrationExecutor(connection)
    # Every other app as it is now; fraud just before the change.
    others = [node for node in executor.loader.graph.leaf_nodes() if node[0] != "fraud"]
    executor.migrate(others + BEFORE)
    old = executor.loader.project_state(others + BEFORE).apps
    # A historical model has no save() of the app's: the name key is set here.
    user = old.get_model("accounts", "User").objects.create(
        username="mallory", username_key="mallory", email="m@x.org"
    )
    action = old.get_model("actions", "ActionType").objects.create(
        id="click", name="Click", reward=1
    )
    entry = old.get_model("scoreboard", "ScoreEntry").objects.create(
        user=user, delta=1, score_before=0, score_after=1, reason="completion"
    )
    completion = old.get_model("actions", "Completion").objects.create(
        id=uuid.uuid4(),
        user=user,
        action=action,
        nonce="n1",
        score_entry=entry,
        delta=1,
        started_at=timezone.now(),
        created_at=timezone.now(),
    )
    log = old.get_model("fraud", "FraudLog").objects.create(
        user=user, completion=completion, event="flagged", risk_score=0.6
    )

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    assert new.get_model("fraud", "FraudLog").objects.get(pk=log.pk).completion_id == completion.pk

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
