"""An HTTP server on a loopback port, in a thread: what the devstack's small stand-ins (the
managed-identity endpoint, the Event Grid topic) have in common. Each gives :meth:`start` its own
handler class and calls :meth:`serve`."""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """Started by :meth:`start` (or ``with``), stopped by :meth:`stop`; ``thread_name`` names its thread."""

    thread_name = "loopback-server"

    def __init__(self) -> None:
        self._server: ThreadingHTTPServer | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The host and port it listens on."""
        host, port = self._server.server_address[:2]
        return host, port

    def start(self) -> "LoopbackServer":
        raise NotImplementedError("a stand-in serves its own handler")

    def serve(self, handler: type[BaseHTTPRequestHandler], *, port: int = 0,
              context: ssl.SSLContext | None = None) -> None:
        """Listen on 127.0.0.1 (a free port when ``port`` is 0), over TLS when given a ``context``."""
        server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        if context is not None:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        self._server = server
        threading.Thread(target=server.serve_forever, name=self.thread_name, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
