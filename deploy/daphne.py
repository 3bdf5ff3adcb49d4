"""daphne's server with its per-connection housekeeping sized for thousands of idle sockets.

daphne's `Server` walks every connection each second (`application_checker`: reap the
applications that finished) and every two seconds (`timeout_checker`: timeouts and the
keepalive ping). With 5,000 board sockets in a process, py-spy showed those walks and
the burst of pings they send at 20-25 % of the event loop's time during a fan-out run,
in blocks of tens of milliseconds that a push waits behind. Here:

- the reaping looks only at the connections that disconnected or whose application
  finished (a done-callback marks them), with daphne's own rules for each one;
- the timeout and ping check visits a tenth of the connections every 0.2 s instead of
  all of them every 2 s: the same check as often per connection, in small slices.

`install()` (called by `config.asgi`, as `core.logs` does for the access log) makes
the `daphne` command use this server; nothing changes for any other server.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from concurrent.futures import CancelledError
from typing import Any

from daphne.server import Server as DaphneServer
from twisted.internet import reactor

logger = logging.getLogger("daphne.server")

# The timeout check visits one slice of the connections each TIMEOUT_PERIOD / SLICES s.
TIMEOUT_PERIOD = 2.0
TIMEOUT_SLICES = 10


class Server(DaphneServer):
    """daphne's `Server`, with housekeeping proportional to what changed (see above)."""

    def run(self) -> None:
        self.to_reap: set[Any] = set()
        self.timeout_slice = 0
        super().run()

    def create_application(self, protocol: Any, scope: dict[str, Any]) -> Any:
        queue = super().create_application(protocol, scope)
        details = self.connections.get(protocol)
        instance = details.get("application_instance") if details else None
        if instance is not None:
            instance.add_done_callback(lambda _done: self.to_reap.add(protocol))
        return queue

    def protocol_disconnected(self, protocol: Any) -> None:
        super().protocol_disconnected(protocol)
        self.to_reap.add(protocol)

    def application_checker(self) -> None:
        """daphne's `application_checker`, for the connections marked since the last run:
        an application still running on a closed connection stays marked until it ends
        or outlives `application_close_timeout` (then it is cancelled)."""
        marked, self.to_reap = self.to_reap, set()
        for protocol in marked:
            details = self.connections.get(protocol)
            if details is None:
                continue
            disconnected = details.get("disconnected", None)
            instance = details.get("application_instance", None)
            if (
                disconnected
                and time.time() - disconnected > self.application_close_timeout
                and instance
                and not instance.done()
            ):
                logger.warning(
                    "Application instance %r for connection %s took too long to shut down "
                    "and was killed.",
                    instance,
                    repr(protocol),
                )
                instance.cancel()
            if instance and instance.done():
                try:
                    exception = instance.exception()
                except (CancelledError, asyncio.CancelledError):
                    exception = None
                if isinstance(exception, KeyboardInterrupt):
                    self.stop()
                elif exception:
                    logger.error("Exception inside application: %s", exception, exc_info=exception)
                    if not disconnected:
                        protocol.handle_exception(exception)
                del details["application_instance"]
                instance = None
            if not instance and disconnected:
                del self.connections[protocol]
            elif disconnected:
                self.to_reap.add(protocol)  # still shutting down: look again next time
        # The interface's method as the module-level reactor's (zope signature): not its own.
        reactor.callLater(1, self.application_checker)  # type: ignore[arg-type]

    def timeout_checker(self) -> None:
        """daphne's `timeout_checker` (timeouts and keepalive pings), one slice at a time."""
        protocols = list(self.connections)
        for protocol in protocols[self.timeout_slice :: TIMEOUT_SLICES]:
            protocol.check_timeouts()
        self.timeout_slice = (self.timeout_slice + 1) % TIMEOUT_SLICES
        reactor.callLater(TIMEOUT_PERIOD / TIMEOUT_SLICES, self.timeout_checker)  # type: ignore[arg-type]


def install() -> None:
    """Under the daphne command, run this server (the CLI builds it after importing the
    application, so setting its class here is in time)."""
    cli = sys.modules.get("daphne.cli")
    if cli is not None:
        cli.CommandLineInterface.server_class = Server
