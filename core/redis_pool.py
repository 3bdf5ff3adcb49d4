"""The Redis connection pools of every client in the project, and the circuit breaker
they share.

Pools: each one is bounded and makes a caller WAIT for a free connection, for at most
REDIS_POOL_TIMEOUT seconds, instead of failing it at once (redis-py's default pool raises
`MaxConnectionsError` as soon as its 100 connections are out, which a burst of board
sockets reading their snapshots reached). django-redis (CONNECTION_POOL_CLASS), the
broadcaster's event-loop clients (`async_client`) and the Celery broker (`BrokerTransport`)
use them.

Breaker: a Redis that stalls answers nothing; each call then waits for its socket
timeout, and a request that makes several calls (rate limits, account state, fraud
signals, index, audit outbox, broker) paid it for each one. The first timeout or
connection error in a process opens the breaker: for REDIS_BREAKER_SECONDS every Redis
call of the process fails at once with `RedisUnavailable` (a redis `ConnectionError`, so
each caller degrades exactly as it does for a Redis that is down). Then one call goes
through as a probe; an answer closes the breaker, a failure opens it again.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from typing import Any

import redis
import redis.asyncio
from django.conf import settings
from kombu.transport import redis as kombu_redis

from core import metrics

logger = logging.getLogger(__name__)

# What a call that reached Redis (or tried to) raises when Redis did not answer it.
_FAILURES = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError)


class RedisUnavailable(redis.exceptions.ConnectionError):
    """Refused without trying: the breaker is open (Redis failed a moment ago)."""


class CircuitBreaker:
    """One per process, shared by every pool, sync and async, and every thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.open = False
        self._retry_at = 0.0  # time.monotonic() when the next probe may go
        self.trips = 0  # times it opened (a waiter checks whether it opened meanwhile)

    def allow(self) -> bool:
        """May a call go to Redis now? While open: no, except one probe per period."""
        if not self.open:
            return True
        with self._lock:
            now = time.monotonic()
            if not self.open:
                return True
            if now < self._retry_at:
                metrics.redis_short_circuits.inc()
                return False
            # This caller probes; the others keep failing fast until it is answered.
            self._retry_at = now + settings.REDIS_BREAKER_SECONDS
            return True

    def failed(self, error: BaseException) -> None:
        with self._lock:
            self._retry_at = time.monotonic() + settings.REDIS_BREAKER_SECONDS
            if self.open:
                return
            self.open = True
            self.trips += 1
        metrics.redis_breaker_trips.inc()
        logger.warning(
            "Redis did not answer (%s: %s); treating it as down for %.1fs",
            type(error).__name__,
            error,
            settings.REDIS_BREAKER_SECONDS,
        )

    def answered(self) -> None:
        if not self.open:
            return
        with self._lock:
            if not self.open:
                return
            self.open = False
        logger.warning("Redis answers again; the circuit breaker is closed")

    def reset(self) -> None:
        """Close it without a probe (tests)."""
        with self._lock:
            self.open = False
            self._retry_at = 0.0


breaker = CircuitBreaker()


def _refused() -> RedisUnavailable:
    return RedisUnavailable(
        f"Redis is treated as down for up to {settings.REDIS_BREAKER_SECONDS}s after a failure"
    )


class _Guarded:
    """Mixin for a redis-py Connection: what happens on the wire tells the breaker."""

    def connect(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().connect(*args, **kwargs)  # type: ignore[misc]
        except _FAILURES as error:
            breaker.failed(error)
            raise

    def send_packed_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().send_packed_command(*args, **kwargs)  # type: ignore[misc]
        except _FAILURES as error:
            breaker.failed(error)
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.exceptions.ResponseError:
            breaker.answered()  # an error reply is an answer
            raise
        except _FAILURES as error:
            breaker.failed(error)
            raise
        breaker.answered()
        return response


# An event loop's timeouts say how busy the loop was as much as how Redis is: a burst of
# board sockets keeps daphne's loop from seeing a reply (or a finished connect) for longer
# than the timeout. They fail their call but do not open the breaker; errors do, and the
# synchronous clients (requests, in threads) see a stalled Redis for themselves.
_ASYNC_FAILURES = (redis.exceptions.ConnectionError, ConnectionError)


class _AsyncGuarded:
    """`_Guarded` for a redis.asyncio Connection (timeouts aside: see above)."""

    async def connect(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().connect(*args, **kwargs)  # type: ignore[misc]
        except _ASYNC_FAILURES as error:
            breaker.failed(error)
            raise

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]
        except _ASYNC_FAILURES as error:
            breaker.failed(error)
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            response = await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except redis.exceptions.ResponseError:
            breaker.answered()
            raise
        except _ASYNC_FAILURES as error:
            breaker.failed(error)
            raise
        breaker.answered()
        return response


def guarded(connection_class: type) -> type:
    """`connection_class` (TCP, TLS, Unix socket, sync or async) reporting to the breaker."""
    if issubclass(connection_class, (_Guarded, _AsyncGuarded)):
        return connection_class
    return _guarded(connection_class)  # type: ignore[arg-type]  # classes hash


@functools.cache
def _guarded(connection_class: type) -> type:
    is_async = issubclass(connection_class, redis.asyncio.connection.AbstractConnection)
    mixin = _AsyncGuarded if is_async else _Guarded
    return type(f"Guarded{connection_class.__name__}", (mixin, connection_class), {})


class BlockingConnectionPool(redis.BlockingConnectionPool):
    """redis-py's blocking pool (REDIS_MAX_CONNECTIONS, REDIS_POOL_TIMEOUT by default),
    behind the breaker."""

    def __init__(self, *, connection_class: type = redis.Connection, **kwargs: Any) -> None:
        kwargs.setdefault("max_connections", settings.REDIS_MAX_CONNECTIONS)
        kwargs.setdefault("timeout", settings.REDIS_POOL_TIMEOUT)
        super().__init__(connection_class=guarded(connection_class), **kwargs)  # type: ignore[no-untyped-call]

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not breaker.allow():
            raise _refused()
        trips = breaker.trips
        connection = super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        if breaker.trips != trips and breaker.open:
            # Redis failed another caller while this one waited for a connection.
            self.release(connection)  # type: ignore[no-untyped-call]
            raise _refused()
        return connection


class AsyncBlockingConnectionPool(redis.asyncio.BlockingConnectionPool):
    """`BlockingConnectionPool` for redis.asyncio clients."""

    def __init__(self, *, connection_class: type = redis.asyncio.Connection, **kwargs: Any) -> None:
        kwargs.setdefault("max_connections", settings.REDIS_MAX_CONNECTIONS)
        kwargs.setdefault("timeout", settings.REDIS_POOL_TIMEOUT)
        super().__init__(connection_class=guarded(connection_class), **kwargs)

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        if not breaker.allow():
            raise _refused()
        trips = breaker.trips
        connection = await super().get_connection(*args, **kwargs)  # type: ignore[no-untyped-call]
        if breaker.trips != trips and breaker.open:
            await self.release(connection)
            raise _refused()
        return connection


def async_client(**options: Any) -> redis.asyncio.Redis:
    """A redis.asyncio client of REDIS_URL on its own blocking, guarded pool."""
    pool = AsyncBlockingConnectionPool.from_url(settings.REDIS_URL, **options)
    return redis.asyncio.Redis(connection_pool=pool)


class _BrokerChannel(kombu_redis.Channel):
    """kombu's Redis channel on the guarded connections and the blocking pools."""

    connection_class = guarded(redis.Connection)
    connection_class_ssl = guarded(redis.SSLConnection)

    def _get_pool(self, asynchronous: bool = False) -> Any:
        params = self._connparams(asynchronous=asynchronous)  # type: ignore[attr-defined]
        # What kombu's `_get_pool` does besides building the pool.
        self.keyprefix_fanout = self.keyprefix_fanout.format(db=params["db"])
        # A publish (a new channel's PING, then LPUSH) must not wait longer for a stalled
        # Redis than any other call of a request. The worker's BRPOP blocks on the server
        # (kombu reads its reply once the socket is readable), not on this timeout.
        params["socket_timeout"] = settings.REDIS_SOCKET_TIMEOUT
        params["socket_connect_timeout"] = settings.REDIS_SOCKET_TIMEOUT
        return BlockingConnectionPool(**params)


class BrokerTransport(kombu_redis.Transport):
    """The Celery broker transport for a `redis://` broker (CELERY_BROKER_TRANSPORT)."""

    Channel = _BrokerChannel
