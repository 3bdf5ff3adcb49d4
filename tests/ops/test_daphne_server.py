"""deploy.daphne: daphne's housekeeping, run only on the connections that need it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from deploy import daphne as lean


class FakeProtocol:
    def __init__(self) -> None:
        self.timeout_checks = 0
        self.errors: list[BaseException] = []

    def check_timeouts(self) -> None:
        self.timeout_checks += 1

    def handle_exception(self, exception: BaseException) -> None:
        self.errors.append(exception)


@pytest.fixture
def server(monkeypatch):  # type: ignore[no-untyped-def]
    later: list[tuple[float, Any]] = []
    monkeypatch.setattr(lean.reactor, "callLater", lambda delay, f: later.append((delay, f)))
    server = lean.Server.__new__(lean.Server)  # no endpoints, no reactor: the state only
    server.connections = {}
    server.to_reap = set()
    server.timeout_slice = 0
    server.application_close_timeout = 10
    server.later = later
    return server


def test_it_reaps_only_what_finished_or_disconnected(server) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        idle, finished, gone, failed = (FakeProtocol() for _ in range(4))
        never = asyncio.get_running_loop().create_future()
        done = asyncio.get_running_loop().create_future()
        done.set_result(None)
        broken = asyncio.get_running_loop().create_future()
        broken.set_exception(RuntimeError("boom"))
        server.connections = {
            idle: {"application_instance": never},
            finished: {"application_instance": done},
            gone: {"application_instance": done, "disconnected": 1.0},
            failed: {"application_instance": broken},
        }
        server.to_reap = {finished, gone, failed}
        server.application_checker()
        assert server.connections == {
            idle: {"application_instance": never},
            finished: {},
            failed: {},
        }
        assert [str(e) for e in failed.errors] == ["boom"]
        assert server.later[-1][0] == 1
        never.cancel()

    asyncio.run(scenario())


def test_it_cancels_an_application_that_outlives_its_closed_socket(server) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> None:
        protocol = FakeProtocol()
        running = asyncio.get_running_loop().create_future()
        server.connections = {protocol: {"application_instance": running, "disconnected": 1.0}}
        server.to_reap = {protocol}
        server.application_checker()
        assert running.cancelled()
        server.application_checker()
        assert server.connections == {}

    asyncio.run(scenario())


def test_it_checks_timeouts_a_slice_at_a_time_and_every_connection_each_period(server) -> None:  # type: ignore[no-untyped-def]
    protocols = [FakeProtocol() for _ in range(25)]
    server.connections = {p: {} for p in protocols}
    server.timeout_checker()
    assert sum(p.timeout_checks for p in protocols) == 3  # a tenth, rounded up
    for _ in range(lean.TIMEOUT_SLICES - 1):
        server.timeout_checker()
    assert [p.timeout_checks for p in protocols] == [1] * 25
    assert server.later[-1][0] == pytest.approx(lean.TIMEOUT_PERIOD / lean.TIMEOUT_SLICES)
