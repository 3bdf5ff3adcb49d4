"""An Idempotency-Key's retry learns the completion's real outcome, also when the first
response was never stored (the connection broke after COMMIT, the process died)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import OperationalError, connection

from actions.models import Completion, IdempotencyRecord
from scoreboard.models import ScoreEntry

pytestmark = pytest.mark.django_db(transaction=True)  # real commits, as in production


def test_a_retry_gets_the_outcome_when_the_stored_response_is_missing(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    token = start(client, "click")
    first = complete(client, "click", token, HTTP_IDEMPOTENCY_KEY="k-missing")
    assert first.status_code == 200, first.json()
    # What a request that died between its COMMIT and storing its response leaves.
    IdempotencyRecord.objects.update(response_status=None, response_body=None)

    retry = complete(client, "click", token, HTTP_IDEMPOTENCY_KEY="k-missing")

    assert retry.status_code == 200, retry.json()
    assert retry.json()["completionId"] == first.json()["completionId"]
    assert retry.json()["newScore"] == 5
    assert retry["Idempotent-Replayed"] == "true"
    alice.refresh_from_db()
    assert alice.score == 5
    assert Completion.objects.filter(user=alice).count() == 1
    assert ScoreEntry.objects.filter(user=alice).count() == 1
    # Rebuilt once, then replayed as stored.
    assert IdempotencyRecord.objects.get().response_status == 200


def test_a_response_that_cannot_be_stored_still_answers_and_the_retry_learns_it(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    def fail_storing_the_response(
        execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any
    ) -> Any:
        if sql.startswith('UPDATE "actions_idempotencyrecord"'):
            raise OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    client = client_for(alice)
    token = start(client, "click")
    with connection.execute_wrapper(fail_storing_the_response):
        first = complete(client, "click", token, HTTP_IDEMPOTENCY_KEY="k-lost")
    # The completion committed: the client hears so, not a 503.
    assert first.status_code == 200, first.json()
    assert IdempotencyRecord.objects.get().response_status is None

    retry = complete(client, "click", token, HTTP_IDEMPOTENCY_KEY="k-lost")

    assert retry.status_code == 200, retry.json()  # not 409 idempotency_in_progress
    assert retry.json()["completionId"] == first.json()["completionId"]
    alice.refresh_from_db()
    assert alice.score == 5
    assert Completion.objects.filter(user=alice).count() == 1


def test_a_retry_with_another_body_is_still_refused(
    client_for, alice, click, start, complete
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    assert (
        complete(client, "click", start(client, "click"), HTTP_IDEMPOTENCY_KEY="k").status_code
        == 200
    )
    IdempotencyRecord.objects.update(response_status=None, response_body=None)
    other = complete(client, "click", start(client, "click"), HTTP_IDEMPOTENCY_KEY="k")
    assert other.status_code == 409
    assert other.json()["error"]["code"] == "idempotency_key_reused"
