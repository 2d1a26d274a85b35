"""`PartnerCenterSimulator`: the simulated Partner Center and Entra ID behind a real HTTPS server."""

from __future__ import annotations

import socket
import ssl
import tempfile
import threading
from pathlib import Path

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from devstack.simulator.app import PartnerCenterApp
from devstack.simulator.certificates import issue_server_certificate
from devstack.simulator.state import PartnerCenterState

# An idle or half-open client must not hold its handler thread forever.
CONNECTION_TIMEOUT_SECONDS = 30


class _QuietRequestHandler(WSGIRequestHandler):
    """Serves requests without writing a line per request (or per aborted handshake) to stderr."""

    timeout = CONNECTION_TIMEOUT_SECONDS
    # Keep-alive, as Partner Center itself offers: without it every call pays a TLS handshake.
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # Headers and body go out as separate TLS records; with Nagle's algorithm the second one
        # waits for a delayed ACK, about 10 ms per request. Loopback gains nothing from batching.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().setup()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass

    def log_error(self, format: str, *args: object) -> None:
        pass


class PartnerCenterSimulator(PartnerCenterState):
    """Partner Center's REST API and its Entra ID authority on one local HTTPS port.

    `url` is both the API base URL and the authority host; clients trust `ca_path`. The scenario
    controls (accept_relationship, inject, counters, ...) come from `PartnerCenterState` and are
    also served over HTTP under `/_simulator`.
    """

    def __init__(
        self,
        customers: int = 25,
        seed: int = 1,
        latency: float = 0.0,
        requests_per_minute: int | None = None,
        next_link_form: str = "v1",
        token_lifetime: int = 3600,
        other_relationships: int = 0,
        cloud: str = "public",
        host: str = "127.0.0.1",
        port: int = 0,
        state_dir: Path | None = None,
    ) -> None:
        super().__init__(
            customers=customers,
            seed=seed,
            latency=latency,
            requests_per_minute=requests_per_minute,
            next_link_form=next_link_form,
            token_lifetime=token_lifetime,
            other_relationships=other_relationships,
            cloud=cloud,
        )
        self.host = host
        self.port = port
        self._state_dir = Path(state_dir) if state_dir is not None else None
        self._temporary_dir: tempfile.TemporaryDirectory | None = None
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._ca_path: Path | None = None

    @property
    def url(self) -> str:
        """The base URL, e.g. https://127.0.0.1:51234 (API base and Entra authority host alike)."""
        if self._server is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return f"https://{self.host}:{self.port}"

    @property
    def ca_path(self) -> str:
        """The PEM file of the local CA that signed the server certificate."""
        if self._ca_path is None:
            raise RuntimeError("the simulator is not running: call start() first")
        return str(self._ca_path)

    def start(self) -> "PartnerCenterSimulator":
        """Generate the certificate, bind the port and serve in background threads."""
        if self._server is not None:
            return self
        state_dir = self._state_dir
        if state_dir is None:
            self._temporary_dir = tempfile.TemporaryDirectory(prefix="partner-center-simulator-")
            state_dir = Path(self._temporary_dir.name)
        certificate = issue_server_certificate(state_dir, [self.host])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.num_tickets = 0  # clients keep their connection alive; no sessions to resume
        context.load_cert_chain(certificate.cert_path, certificate.key_path)

        server = make_server(
            self.host, self.port, PartnerCenterApp(self), threaded=True, request_handler=_QuietRequestHandler
        )
        # TLS is added here rather than through make_server(ssl_context=...): werkzeug would shake
        # hands in the accepting thread, where one silent client stalls every other connection.
        # Deferred, the handshake runs on the connection's own handler thread at its first read.
        server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
        server.ssl_context = context
        self.port = server.port
        self._ca_path = certificate.ca_path
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="partner-center-simulator", daemon=True
        )
        self._thread.start()
        self.webhooks.start(self.url, state_dir)
        return self

    def stop(self) -> None:
        """Stop serving and remove a temporary state folder."""
        self.webhooks.wait(timeout=5)  # deliveries in flight must not outlive the certificate URL
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None
            self._thread = None
        if self._temporary_dir is not None:
            self._temporary_dir.cleanup()
            self._temporary_dir = None
        self._ca_path = None

    def __enter__(self) -> "PartnerCenterSimulator":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
