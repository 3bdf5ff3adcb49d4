"""PostgreSQL black-holed for 8 s (connections kept open, no byte forwarded, no reset)
while completions with Idempotency-Keys stream in through gunicorn (nginx) and daphne:
every request answers within a few seconds (503 `service_unavailable` while the database
is silent), `/readyz` answers 503 naming the database within its budget, and afterwards
each completion whose answer was lost is retried with its key and learns its outcome."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from django.conf import settings

from accounts.models import User
from actions.models import Completion
from deploy.stack import Stack
from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory
from tests.faults.invariants import NO_FRAUD, assert_ledger
from tests.faults.proxy import TcpProxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.faults,
    pytest.mark.timeout(300),
    pytest.mark.django_db(transaction=True),
]

BLACKHOLE_SECONDS = 8.0
CLIENT_TIMEOUT = 15.0  # what the clients waited before giving up
# A request's worst case: the client's bound on its query (statement timeout + 1 s), then
# the check whether the completion was stored (connect timeout 3 s, or the pool's 2 s).
ANSWER_WITHIN = 11.0
READYZ_WITHIN = 4.0  # its 2 s budget for the database, plus Redis and the channel layer


@pytest.fixture(scope="module")
def proxy() -> Iterator[TcpProxy]:
    db = settings.DATABASES["default"]
    with TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))) as running:
        yield running


@pytest.fixture(scope="module")
def stack(start_stack, proxy: TcpProxy) -> Stack:  # type: ignore[no-untyped-def]
    db = settings.DATABASES["default"]
    return start_stack(
        web=1,
        ws=1,
        worker=False,
        gunicorn_workers=2,
        database_url=f"postgres://{db['USER']}@127.0.0.1:{proxy.port}/{db['NAME']}",
        # The production defaults of every database bound; the pool's wait shortened.
        extra_env={**NO_FRAUD, "DB_POOL_TIMEOUT": "2"},
    )


@dataclass
class Seen:
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    hung: list[str] = field(default_factory=list)
    slowest: float = 0.0
    told: set[str] = field(default_factory=set)
    # (user, token, key) of completions whose outcome the client did not hear.
    unknown: list[tuple[User, str, str]] = field(default_factory=list)

    def record(self, what: str, response: httpx.Response | None, elapsed: float) -> None:
        with self.lock:
            self.slowest = max(self.slowest, elapsed)
            if response is None:
                self.hung.append(f"{what} after {elapsed:.1f} s")
                return
            self.statuses[response.status_code] += 1
            if response.status_code >= 400:
                self.codes[response.json()["error"]["code"]] += 1


def _play(base_url: str, user: User, seen: Seen, deadline: float) -> None:
    """Start then complete with an Idempotency-Key, until the deadline (bounded count)."""
    headers = {"Authorization": f"Bearer {access_token_for(user)}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=CLIENT_TIMEOUT) as http:
        for _ in range(1000):
            if time.monotonic() >= deadline:
                return
            began = time.monotonic()
            try:
                started = http.post("/api/v1/actions/click/start/")
            except httpx.HTTPError:
                seen.record("start", None, time.monotonic() - began)
                continue
            seen.record("start", started, time.monotonic() - began)
            if started.status_code != 201:
                time.sleep(0.1)
                continue
            token, key = started.json()["actionToken"], str(uuid.uuid4())
            began = time.monotonic()
            try:
                done = http.post(
                    "/api/v1/actions/complete/",
                    json={"actionId": "click", "actionToken": token},
                    headers={"Idempotency-Key": key},
                )
            except httpx.HTTPError:
                done = None
            seen.record("complete", done, time.monotonic() - began)
            if done is not None and done.status_code == 200:
                with seen.lock:
                    seen.told.add(done.json()["completionId"])
            else:
                with seen.lock:
                    seen.unknown.append((user, token, key))
            time.sleep(0.05)


def _probe_readyz(
    urls: list[str], until: float, probes: list[tuple[float, float, int, dict]]
) -> None:
    with httpx.Client(timeout=CLIENT_TIMEOUT) as http:
        for _ in range(500):
            if time.monotonic() >= until:
                return
            for url in urls:
                began = time.monotonic()
                try:
                    response = http.get(f"{url}/readyz")
                    probes.append(
                        (began, time.monotonic() - began, response.status_code, response.json())
                    )
                except httpx.HTTPError:
                    probes.append((began, time.monotonic() - began, 0, {}))
            time.sleep(0.5)


def test_a_black_holed_postgres_gets_503_within_seconds_and_retries_learn_the_outcome(
    stack: Stack, proxy: TcpProxy
) -> None:
    ActionTypeFactory(id="click", reward=5)
    users = [UserFactory(username=f"hole-{n}") for n in range(6)]
    daphne = f"http://127.0.0.1:{stack.ws_ports[0]}"
    seen = Seen()
    probes: list[tuple[float, float, int, dict]] = []
    began = time.monotonic()
    deadline = began + 3 + BLACKHOLE_SECONDS + 4
    # Half the players through nginx (gunicorn: a connection per thread), half straight
    # to daphne (the psycopg pool).
    threads = [
        threading.Thread(
            target=_play, args=(stack.url if n % 2 else daphne, user, seen, deadline), daemon=True
        )
        for n, user in enumerate(users)
    ]
    threads.append(
        threading.Thread(
            target=_probe_readyz, args=([stack.url, daphne], deadline, probes), daemon=True
        )
    )
    for thread in threads:
        thread.start()
    try:
        time.sleep(3)
        hole_start = time.monotonic()
        proxy.blackhole()
        time.sleep(BLACKHOLE_SECONDS)
    finally:
        proxy.restore()
    hole_end = time.monotonic()
    for thread in threads:
        thread.join(timeout=deadline - time.monotonic() + CLIENT_TIMEOUT * 2)
        assert not thread.is_alive(), "a client thread hung"

    # Every request answered, within a few seconds, never a 500.
    assert not seen.hung, seen.hung[:5]
    assert seen.slowest < ANSWER_WITHIN, seen.slowest
    assert set(seen.statuses) <= {200, 201, 503}, dict(seen.statuses)
    assert seen.statuses[503] > 0, "the black hole was not seen"
    assert set(seen.codes) <= {"service_unavailable"}, dict(seen.codes)
    # /readyz: 503 naming the database while it is silent, each answer within its budget.
    assert probes
    assert all(status for _, _, status, _ in probes), "a readiness probe hung"
    assert max(elapsed for _, elapsed, _, _ in probes) < READYZ_WITHIN, probes
    silent = [body for at, _, _, body in probes if hole_start + 1 < at < hole_end - 3]
    assert silent
    assert all(body["error"]["details"]["down"] == ["database"] for body in silent), silent

    # After the black hole: each completion whose outcome the client did not hear is
    # retried with its key (a few times: the servers reconnect first).
    replayed = 0
    for user, token, key in seen.unknown:
        headers = {"Authorization": f"Bearer {access_token_for(user)}", "Idempotency-Key": key}
        with httpx.Client(base_url=stack.url, headers=headers, timeout=CLIENT_TIMEOUT) as http:
            for _ in range(20):
                again = http.post(
                    "/api/v1/actions/complete/", json={"actionId": "click", "actionToken": token}
                )
                if again.status_code != 503:
                    break
                time.sleep(0.5)
        assert again.status_code == 200, again.text  # never 409 idempotency_in_progress
        completion_id = again.json()["completionId"]
        assert completion_id not in seen.told
        if again.headers.get("Idempotent-Replayed") == "true":
            # Stored by the first attempt: the retry learns that completion.
            replayed += 1
        seen.told.add(completion_id)

    # Counted once: the stored completions are exactly those the clients were told of.
    stored = {
        str(c) for c in Completion.objects.filter(user__in=users).values_list("id", flat=True)
    }
    assert stored == seen.told, (len(stored), len(seen.told))
    assert_ledger(users=users)
    print(
        f"black hole: {dict(seen.statuses)}, slowest answer {seen.slowest:.1f} s,"
        f" slowest /readyz {max(e for _, e, _, _ in probes):.1f} s,"
        f" {len(seen.unknown)} retried, {replayed} of them stored by the first attempt"
    )
