"""A PostgreSQL that stops answering (behind a proxy that black-holes its connections)
fails a query within the client's bound, with OperationalError, instead of hanging."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import OperationalError, connection
from django.db.backends.postgresql.base import DatabaseWrapper

from tests.faults.proxy import TcpProxy

pytestmark = [pytest.mark.django_db, pytest.mark.timeout(60)]


@pytest.fixture
def proxy() -> Iterator[TcpProxy]:
    db = connection.settings_dict
    with TcpProxy((db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))) as running:
        yield running


@pytest.fixture
def through_proxy(proxy: TcpProxy) -> Iterator[DatabaseWrapper]:
    """A connection of the app's own configuration (no pool) to PostgreSQL via `proxy`."""
    settings_dict = copy.deepcopy(connection.settings_dict)
    settings_dict.update(PORT=str(proxy.port), HOST="127.0.0.1")
    settings_dict["OPTIONS"].pop("pool", None)
    wrapper = DatabaseWrapper(settings_dict, alias="through-proxy")
    wrapper.inc_thread_sharing()  # each query runs in a thread of its own
    try:
        yield wrapper
    finally:
        proxy.restore()
        wrapper.close()
        wrapper.dec_thread_sharing()


def _timed_query(wrapper: DatabaseWrapper, sql: str) -> tuple[float, BaseException | None]:
    """Run `sql` in a thread (a hang must not hang the test); its time and error."""
    result: list[BaseException | None] = []

    def run() -> None:
        try:
            with wrapper.cursor() as cursor:
                cursor.execute(sql)
            result.append(None)
        except BaseException as exc:  # reported to the test
            result.append(exc)

    began = time.monotonic()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout=15)
    assert not thread.is_alive(), "the query hung on a black-holed connection"
    return time.monotonic() - began, result[0]


def test_a_query_on_a_black_holed_connection_fails_within_the_bound(
    through_proxy: DatabaseWrapper, proxy: TcpProxy, settings
) -> None:  # type: ignore[no-untyped-def]
    settings.DB_CLIENT_TIMEOUT_SECONDS = 2.0
    elapsed, error = _timed_query(through_proxy, "SELECT 1")
    assert error is None, error
    proxy.blackhole()

    elapsed, error = _timed_query(through_proxy, "SELECT 1")

    assert isinstance(error, OperationalError), repr(error)
    assert 1.5 <= elapsed < 5, elapsed
    # The connection was closed (its protocol state unknown), and Django knows it.
    assert through_proxy.connection is None or through_proxy.connection.closed
    through_proxy.close()
    # A new connection through the black hole: bounded by the connect timeout.
    elapsed, error = _timed_query(through_proxy, "SELECT 1")
    assert isinstance(error, OperationalError), repr(error)
    assert elapsed < settings.DB_CONNECT_TIMEOUT + 2, elapsed
    proxy.restore()
    through_proxy.close()
    elapsed, error = _timed_query(through_proxy, "SELECT 1")
    assert error is None, error


def test_a_slow_statement_is_cancelled_by_the_server_first(
    through_proxy: DatabaseWrapper, settings
) -> None:  # type: ignore[no-untyped-def]
    """The server's statement timeout ends a slow query and leaves the connection usable."""
    through_proxy.settings_dict["OPTIONS"]["options"] = "-c statement_timeout=500"
    settings.DB_CLIENT_TIMEOUT_SECONDS = 5.0
    elapsed, error = _timed_query(through_proxy, "SELECT pg_sleep(3)")
    assert isinstance(error, OperationalError), repr(error)
    assert "statement timeout" in str(error)
    assert elapsed < 2.5, elapsed
    elapsed, error = _timed_query(through_proxy, "SELECT 1")
    assert error is None, error


def test_every_connection_carries_the_bounds() -> None:
    """The app's own connections: server-side timeouts, keepalives and TCP user timeout."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "3s"
        cursor.execute("SHOW idle_in_transaction_session_timeout")
        assert cursor.fetchone()[0] == "15s"
    params = connection.connection.info.get_parameters()
    assert params["keepalives"] == "1"
    assert params["tcp_user_timeout"] == "6000"
    assert params["connect_timeout"] == "3"
    assert type(connection.connection).__name__ == "BoundedConnection"
