"""The invariants every fault scenario ends on, and a bounded client that streams
completions at a running stack and records what it was told."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
import redis
import websockets
from django.conf import settings
from django.db.models import Sum

from accounts.models import User
from actions.models import Completion
from deploy.stack import ROOT, Stack
from fraud.models import AuditEvent
from fraud.rules import RULES
from leaderboard.index import RedisIndex
from scoreboard.models import ScoreEntry
from tests.conftest import access_token_for

# The fraud rules would refuse a load generator; the faults under test are elsewhere.
NO_FRAUD = {
    "FRAUD_RULE_WEIGHTS": ",".join(f"{name}=0" for name in RULES),
    "COMPLETION_RATE_PER_USER": "100000/m",
    "COMPLETION_RATE_PER_IP": "100000/m",
}


@dataclass
class Outcomes:
    """What each client was told: completion ids it got 200 for, statuses, failures."""

    ok: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    # Completions answered 503: their outcome is unknown to the client (the connection can
    # break after COMMIT went through). `resolve_ambiguous` retries each token once.
    ambiguous: list[tuple[User, str]] = field(default_factory=list)
    resolved: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    slowest: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, user_id: str, response: httpx.Response | None, elapsed: float) -> None:
        with self.lock:
            self.requests += 1
            self.slowest = max(self.slowest, elapsed)
            if response is None:
                return
            self.statuses[response.status_code] += 1
            if response.status_code == 200 and "completionId" in response.text:
                self.ok[user_id].append(response.json()["completionId"])
            elif response.status_code >= 400:
                try:
                    self.codes[response.json()["error"]["code"]] += 1
                except (ValueError, KeyError, TypeError):
                    self.codes[f"unparsed {response.status_code}"] += 1

    def fail(self, message: str) -> None:
        with self.lock:
            self.failures.append(message)

    def assert_clean(self, allowed: set[int]) -> None:
        """Never a 500, never a hang past the client timeout, only the statuses allowed."""
        assert not self.failures, self.failures[:5]
        assert 500 not in self.statuses, dict(self.statuses)
        assert set(self.statuses) <= allowed, (dict(self.statuses), dict(self.codes))


def stream_completions(
    *,
    base_url: str,
    users: list[User],
    action_id: str,
    seconds: float,
    outcomes: Outcomes,
    timeout: float = 10.0,
    pause: float = 0.05,
    max_per_user: int = 400,
) -> None:
    """One thread per user: start then complete, until `seconds` pass (bounded count)."""
    deadline = time.monotonic() + seconds

    def play(user: User) -> None:
        headers = {"Authorization": f"Bearer {access_token_for(user)}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as http:
            for _ in range(max_per_user):
                if time.monotonic() >= deadline:
                    return
                began = time.monotonic()
                try:
                    started = http.post(f"/api/v1/actions/{action_id}/start/")
                except httpx.HTTPError as exc:
                    outcomes.record(str(user.pk), None, time.monotonic() - began)
                    outcomes.fail(f"start: {type(exc).__name__} {exc}")
                    continue
                outcomes.record(str(user.pk), started, time.monotonic() - began)
                if started.status_code != 201:
                    time.sleep(pause)
                    continue
                began = time.monotonic()
                try:
                    done = http.post(
                        "/api/v1/actions/complete/",
                        json={"actionId": action_id, "actionToken": started.json()["actionToken"]},
                    )
                except httpx.HTTPError as exc:
                    outcomes.record(str(user.pk), None, time.monotonic() - began)
                    outcomes.fail(f"complete: {type(exc).__name__} {exc}")
                    continue
                outcomes.record(str(user.pk), done, time.monotonic() - began)
                if done.status_code == 503:
                    with outcomes.lock:
                        outcomes.ambiguous.append((user, started.json()["actionToken"]))
                time.sleep(pause)

    threads = [threading.Thread(target=play, args=(user,), daemon=True) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + timeout * 3)
        assert not thread.is_alive(), "a client thread hung"


def resolve_ambiguous(base_url: str, action_id: str, outcomes: Outcomes) -> None:
    """Retry each completion answered 503 with its own token, as a client would: 200 is
    a completion now; 409 token_replayed means the first attempt was stored."""
    for user, token in outcomes.ambiguous:
        headers = {"Authorization": f"Bearer {access_token_for(user)}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=10) as http:
            began = time.monotonic()
            again = http.post(
                "/api/v1/actions/complete/", json={"actionId": action_id, "actionToken": token}
            )
            outcomes.record(str(user.pk), again, time.monotonic() - began)
        if again.status_code == 409:
            assert again.json()["error"]["code"] == "token_replayed", again.text
            outcomes.resolved[str(user.pk)] += 1
        else:
            assert again.status_code == 200, again.text
    outcomes.ambiguous.clear()


def wait_for(predicate: Any, *, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def reconcile(stack: Stack) -> None:
    """Run the reconciler once, as beat would, in a process of the stack's environment."""
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from leaderboard.rebuild import leaderboard_reconcile as r; r(); r()",
        ],
        cwd=ROOT,
        env=stack.env(),
        check=True,
        timeout=60,
        capture_output=True,
    )


def assert_ledger(*, outcomes: Outcomes | None = None, users: list[User] | None = None) -> None:
    """Score = ledger sum = accepted completions' rewards less reversals; unique nonces;
    a completion entry for each completion and nothing else on the ledger."""
    reversed_ids = set(
        ScoreEntry.objects.filter(reverses__isnull=False).values_list("reverses_id", flat=True)
    )
    for user in User.objects.filter(pk__in=[u.pk for u in users]) if users else User.objects.all():
        ledger = ScoreEntry.objects.filter(user=user).aggregate(s=Sum("delta"))["s"] or 0
        completions = list(Completion.objects.filter(user=user).values("delta", "score_entry_id"))
        rewards = sum(c["delta"] for c in completions if c["score_entry_id"] not in reversed_ids)
        assert user.score == ledger == rewards, (user.username, user.score, ledger, rewards)
        entries = ScoreEntry.objects.filter(user=user, reason=ScoreEntry.Reason.COMPLETION)
        assert entries.count() == len(completions), user.username
    nonces = list(Completion.objects.values_list("nonce", flat=True))
    assert len(nonces) == len(set(nonces))
    if outcomes is not None:
        told = {cid for ids in outcomes.ok.values() for cid in ids}
        stored = {str(cid) for cid in Completion.objects.values_list("id", flat=True)}
        assert told <= stored, f"{len(told - stored)} completions answered 200 are missing"
        # Stored without a 200: only those a retry of their 503 found stored (resolved).
        unanswered = Counter(
            str(uid)
            for uid in Completion.objects.exclude(id__in=[uuid.UUID(c) for c in told]).values_list(
                "user_id", flat=True
            )
        )
        assert unanswered == outcomes.resolved, (
            f"stored but not answered 200: {dict(unanswered)}; resolved: {dict(outcomes.resolved)}"
        )


def backfill_audit(stack: Stack) -> None:
    """Run the audit backfill once, as beat would, in a process of the stack's environment."""
    subprocess.run(
        [
            sys.executable,
            "manage.py",
            "shell",
            "-c",
            "from actions.audit_backfill import completion_audit_backfill as b;"
            " print(b(older_than_seconds=0))",
        ],
        cwd=ROOT,
        env=stack.env(),
        check=True,
        timeout=60,
        capture_output=True,
    )


def assert_audited(stack: Stack | None = None, *, timeout: float = 30.0) -> None:
    """Exactly one accepted-audit record per accepted completion, once the worker drained
    (and, with `stack`, the backfill ran for records a broker outage lost)."""

    def drained() -> bool:
        want = set(Completion.objects.values_list("id", flat=True))
        have = list(
            AuditEvent.objects.filter(kind=AuditEvent.Kind.COMPLETION_ACCEPTED).values_list(
                "completion_id", flat=True
            )
        )
        assert len(have) == len(set(have)), "an audit record was written twice"
        return set(have) == want

    if stack is not None:
        wait_for(
            lambda: not Completion.objects.filter(created_at__gt=_recent()).exists(), timeout=5
        )
        time.sleep(2)  # the worker's queue drains
        backfill_audit(stack)
    wait_for(drained, timeout=timeout, what="one audit record per accepted completion")


def _recent():  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(seconds=1)


def assert_me_completions(base_url: str, outcomes: Outcomes) -> None:
    """Every completion answered 200 is in the user's /me/completions/; nothing else is,
    but those a retry of their 503 found stored."""
    for user in User.objects.filter(pk__in=[uuid.UUID(u) for u in outcomes.ok]):
        headers = {"Authorization": f"Bearer {access_token_for(user)}"}
        seen: list[str] = []
        with httpx.Client(base_url=base_url, headers=headers, timeout=15) as http:
            for offset in range(0, 100_000, 100):
                page = http.get("/api/v1/me/completions/", params={"limit": 100, "offset": offset})
                assert page.status_code == 200, page.text
                results = page.json()["results"]
                seen += [row["completionId"] for row in results]
                if len(results) < 100:
                    break
        told = set(outcomes.ok[str(user.pk)])
        assert told <= set(seen), user.username
        assert len(set(seen) - told) == outcomes.resolved[str(user.pk)], user.username


def db_top(n: int = 10) -> list[tuple[str, int]]:
    return [
        (str(uid), score) for uid, score in User.objects.ranked().values_list("id", "score")[:n]
    ]


def assert_index(redis_url: str | None = None) -> None:
    """Every ranked user's index score equals their score; same order as PostgreSQL."""
    index = RedisIndex()
    index.__dict__["client"] = redis.Redis.from_url(redis_url or settings.REDIS_URL)
    try:
        total = User.objects.rankable().count()
        entries, indexed_total, _ = index.page(offset=0, limit=max(total, 1))
        got = [(e.user_id, e.score) for e in entries]
        assert got == db_top(total), "the index disagrees with PostgreSQL"
        assert indexed_total == total
    finally:
        index.client.close()


async def _viewer_top(ws_url: str, origin: str) -> list[tuple[str, int]]:
    async with websockets.connect(ws_url, origin=origin, open_timeout=10) as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        assert snapshot["type"] == "leaderboard.snapshot", snapshot
        return [(e["userId"], e["score"]) for e in snapshot["entries"]]


def assert_viewer_matches(stack: Stack) -> None:
    """A WebSocket viewer's top 10 is the database's."""
    port = stack.port if stack.processes and stack.port else stack.ws_ports[0]
    url = f"ws://127.0.0.1:{port}/ws/leaderboard/"
    top = asyncio.run(_viewer_top(url, f"http://127.0.0.1:{port}"))
    assert top == db_top(10)


def assert_invariants(
    stack: Stack,
    outcomes: Outcomes,
    *,
    redis_url: str | None = None,
    audited: bool = True,
    backfill: bool = False,
) -> None:
    """Every invariant of the fault suite, after a scenario."""
    assert_ledger(outcomes=outcomes)
    reconcile(stack)
    assert_index(redis_url)
    assert_viewer_matches(stack)
    if audited:
        assert_audited(stack if backfill else None)
    assert_me_completions(stack.url if stack.port else _direct(stack), outcomes)


def _direct(stack: Stack) -> str:
    port = (stack.web_ports or stack.ws_ports)[0]
    return f"http://127.0.0.1:{port}"
