"""Registrations under daphne hash their password without holding a pooled PostgreSQL
connection, so a burst of them larger than the pool never waits past its timeout (503)."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.faults.invariants import NO_FRAUD

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180), pytest.mark.django_db(transaction=True)]

# A pool of 2 connections that no one waits on for more than 2 s: without handing the
# connection back, 12 registrations hashing at once (each a good part of a second on a
# busy core) queue past that (seen: 503s on every run).
ENV = {
    **NO_FRAUD,
    "REGISTRATIONS_PER_IP": "100000/h",
    "DB_POOL_MAX_SIZE": "2",
    "DB_POOL_TIMEOUT": "2",
}
REGISTRATIONS = 12


def test_a_burst_of_registrations_larger_than_the_pool_all_succeed(start_stack) -> None:  # type: ignore[no-untyped-def]
    stack = start_stack(web=0, ws=1, worker=False, proxy=False, extra_env=ENV)
    base = f"http://127.0.0.1:{stack.ws_ports[0]}"

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            tag = uuid.uuid4().hex[:6]
            answers = await asyncio.gather(
                *(
                    http.post(
                        "/api/v1/auth/register/",
                        json={
                            "username": f"reg{tag}{n}",
                            "email": f"reg{tag}{n}@example.com",
                            "password": "a long enough password 123",
                        },
                    )
                    for n in range(REGISTRATIONS)
                )
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(burst()) == [201] * REGISTRATIONS
