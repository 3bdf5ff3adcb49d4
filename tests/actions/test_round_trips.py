"""A completion's Redis round trips against the real Redis: the rate limits and the fraud
signals leave in one pipeline, the after-commit work of the leaderboard, the fraud rules'
memory and the audit outbox in another (core.redis_batch), and each part still
works when its pipeline fails in part or in whole."""

from __future__ import annotations

import pytest
import redis
from django_redis import get_redis_connection

from core.redis_batch import redis_batch, redis_later
from fraud import audit
from fraud.models import AuditEvent
from leaderboard.selectors import leaderboard_top

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_completion_makes_three_redis_round_trips(
    client_for, alice, click, start, complete, redis_calls, drains_held
) -> None:  # type: ignore[no-untyped-def]
    client = client_for(alice)
    assert complete(client, "click", start(client, "click")).status_code == 200  # warm
    token = start(client, "click")
    redis_calls.clear()
    response = complete(client, "click", token)
    assert response.status_code == 200, response.content
    assert response.json()["rank"] == 1
    # the account state; the rate limits with the fraud signals and the action types'
    # generation; everything after commit
    assert len(redis_calls) == 3, redis_calls
    assert redis_calls[1].split() == [
        *("SET", "INCRBY", "SET", "INCRBY"),
        *("LRANGE", "ZADD", "ZREMRANGEBYSCORE", "ZCARD", "EXPIRE", "GET"),
        "GET",
    ]
    after_commit = redis_calls[-1].split()
    # the index write (with its wake-up and me.update), the audit record, the fraud memory
    assert after_commit == ["EVALSHA", "RPUSH", "SET", "LPUSH", "LTRIM", "EXPIRE", "SET"]


def test_the_after_commit_work_survives_redis_forgetting_its_scripts(
    client_for, alice, bob, click, start, complete, drains_held
) -> None:  # type: ignore[no-untyped-def]
    for user in (alice, bob):
        client = client_for(user)
        assert complete(client, "click", start(client, "click")).status_code == 200
    get_redis_connection("strict").script_flush()  # as after a Redis restart
    client = client_for(bob)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200
    assert response.json()["rank"] == 1  # the index script ran again, loading itself
    assert [e["username"] for e in leaderboard_top(n=2, index_only=True)] == ["bob", "alice"]
    assert audit.audit_drain() == 3


def test_parts_queued_in_a_batch_leave_together_and_each_hears_its_replies(redis_calls) -> None:  # type: ignore[no-untyped-def]
    heard: dict[str, object] = {}
    key = "sb-test-batch"
    with redis_batch():
        redis_later(lambda pipe: pipe.set(key, "1"), lambda out: heard.update(a=out))
        redis_later(lambda pipe: (pipe.incr(key), pipe.get(key)), lambda out: heard.update(b=out))
        assert heard == {}  # nothing sent yet
    assert len(redis_calls) == 1
    assert heard == {"a": [True], "b": [2, b"2"]}
    get_redis_connection("strict").delete(key)


def test_a_command_that_fails_is_told_to_its_part_only(redis_calls) -> None:  # type: ignore[no-untyped-def]
    heard: dict[str, object] = {}
    key = "sb-test-batch-str"
    with redis_batch():
        redis_later(lambda pipe: pipe.set(key, "text"), lambda out: heard.update(a=out))
        redis_later(lambda pipe: pipe.incr(key), lambda out: heard.update(b=out))
    assert heard["a"] == [True]
    assert isinstance(heard["b"][0], redis.ResponseError)  # type: ignore[index]
    get_redis_connection("strict").delete(key)


def test_a_part_outside_a_batch_is_sent_at_once_and_a_failing_done_stops_no_other(
    caplog,
) -> None:  # type: ignore[no-untyped-def]
    heard: list[object] = []
    redis_later(lambda pipe: pipe.ping(), heard.append)
    assert heard == [[True]]

    def broken(out: object) -> None:
        raise RuntimeError("a bug in one part")

    with redis_batch():
        redis_later(lambda pipe: pipe.ping(), broken)
        redis_later(lambda pipe: pipe.ping(), heard.append)
    assert heard == [[True], [True]]
    assert "batched Redis work failed" in caplog.text


def test_with_redis_down_each_part_hears_the_error_and_the_completion_stands(
    client_for, alice, click, start, complete, redis_down, settings
) -> None:  # type: ignore[no-untyped-def]
    heard: list[object] = []
    with redis_batch():
        redis_later(lambda pipe: pipe.ping(), heard.append)
    assert isinstance(heard[0], redis.ConnectionError)

    client = client_for(alice)
    response = complete(client, "click", start(client, "click"))
    assert response.status_code == 200, response.content
    assert response.json()["rank"] == 1  # from PostgreSQL
    # the audit record went by a task of its own (eager here)
    assert AuditEvent.objects.filter(completion_id=response.json()["completionId"]).exists()
