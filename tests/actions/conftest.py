from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from tests.factories import ActionTypeFactory


@pytest.fixture
def click(db):  # type: ignore[no-untyped-def]
    """An action with no cooldown, no minimum duration and no cap."""
    return ActionTypeFactory(id="click", reward=5)


@pytest.fixture
def start() -> Callable[..., str]:
    """Start an action through the API and return its token."""

    def run(client: APIClient, action_id: str) -> str:
        response = client.post(f"/api/v1/actions/{action_id}/start/")
        assert response.status_code == 201, response.content
        return response.json()["actionToken"]

    return run


@pytest.fixture
def complete() -> Callable[..., Any]:
    def run(client: APIClient, action_id: str, token: str, **headers: str):  # type: ignore[no-untyped-def]
        return client.post(
            "/api/v1/actions/complete/",
            {"actionId": action_id, "actionToken": token},
            format="json",
            **headers,
        )

    return run
