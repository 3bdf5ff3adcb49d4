"""Fuzzing every operation of the OpenAPI schema (/api/schema/) with schemathesis,
authenticated: never a server error, and every response conforms to the schema.

Bounded in `make test` (a few examples per operation); `make test-faults` sets
FAULTS_LONG=1 for a long run. The hostile cases it does not generate (bodies huge, deep,
not JSON, not UTF-8, with NaN or a key twice) are walked over the same schema's
operations in test_hostile_input.py.
"""

from __future__ import annotations

import os

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.conftest import access_token_for
from tests.factories import ActionTypeFactory, UserFactory

pytestmark = [
    pytest.mark.quickfaults,
    pytest.mark.timeout(400),
    pytest.mark.django_db(transaction=True),
]

LONG = os.environ.get("FAULTS_LONG") == "1"
app = WSGIHandler()
schema = schemathesis.openapi.from_wsgi("/api/schema/", app)


@pytest.fixture
def fuzz_headers(db) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A player with a score and a few action types, as the fuzzer's user."""
    ActionTypeFactory(id="click", reward=5)
    ActionTypeFactory(id="quiz", reward=25, cooldown_seconds=30)
    user = UserFactory(username="fuzzer")
    UserFactory(username="other")
    return {"Authorization": f"Bearer {access_token_for(user)}"}


@schema.parametrize()
@settings(
    max_examples=150 if LONG else 6,
    deadline=None,
    derandomize=not LONG,
    suppress_health_check=list(HealthCheck),
)
def test_it_never_fails_on_fuzzed_requests(case, fuzz_headers) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(
        app=app,
        headers=fuzz_headers,
        checks=[not_a_server_error, response_schema_conformance],
    )
