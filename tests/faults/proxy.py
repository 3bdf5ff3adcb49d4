"""A TCP proxy the test controls, in front of PostgreSQL: `cut()` drops every open
connection and refuses new ones until `restore()`; `blackhole()` silences every open
connection for good and accepts new ones into silence until `restore()`.

A silenced connection stays open on both sides and forwards no byte either way, ever, with
no reset or close passed on: what a peer sends is dropped, as by a firewall or NAT that lost
the connection's state, or a server host that vanished from the network. Only the client's
own timeouts end it (the server's side lingers, as it would, until the proxy stops).
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading


class TcpProxy:
    """Forward 127.0.0.1:<port> to `target`, one thread per connection pair."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.port = int(self._listener.getsockname()[1])
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._cut = threading.Event()
        self._holed = threading.Event()
        self._silenced: list[threading.Event] = []
        self._silent: list[socket.socket] = []
        self._stopping = threading.Event()
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept, name="tcp-proxy", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._listener.close()
        self._close_all()

    def cut(self) -> None:
        """Drop every connection now; refuse new ones (accepted, then closed at once)."""
        self._cut.set()
        self._close_all()

    def blackhole(self) -> None:
        """Silence every open connection for good, and new ones until `restore()`."""
        self._holed.set()
        with self._lock:
            for silenced in self._silenced:
                silenced.set()

    def restore(self) -> None:
        self._cut.clear()
        self._holed.clear()

    def _close_all(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
            silent, self._silent = self._silent, []
        for pair in [*pairs, silent]:
            for sock in pair:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                client.close()
                continue
            if self._holed.is_set():
                with self._lock:
                    self._silent.append(client)  # held open, never read
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=3)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            client.settimeout(None)
            silenced = threading.Event()
            with self._lock:
                self._pairs.append((client, upstream))
                self._silenced.append(silenced)
                self.accepted += 1
            threading.Thread(
                target=self._pump, args=(client, upstream, silenced), daemon=True
            ).start()

    def _pump(self, a: socket.socket, b: socket.socket, silenced: threading.Event) -> None:
        sel = selectors.DefaultSelector()
        sel.register(a, selectors.EVENT_READ, b)
        sel.register(b, selectors.EVENT_READ, a)
        try:
            while not self._stopping.is_set():
                if silenced.is_set():
                    # Read nothing more, close nothing: both sides wait for the other.
                    sel.close()
                    return
                for key, _ in sel.select(timeout=0.2):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            if not silenced.is_set():
                sel.close()
                for sock in (a, b):
                    with contextlib.suppress(OSError):
                        sock.close()
