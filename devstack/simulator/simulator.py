"""`PartnerCenterSimulator`: the simulated Partner Center and Entra ID behind a real HTTPS server."""

from __future__ import annotations

import logging
import ssl
import tempfile
import threading
from pathlib import Path

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from devstack.simulator.app import PartnerCenterApp
from devstack.simulator.certificates import issue_server_certificate
from devstack.simulator.state import PartnerCenterState

# An idle or half-open client must not hold its connection forever.
CONNECTION_TIMEOUT_SECONDS = 30
# Requests served at once: every sync fetch thread, webhook delivery and test client, with room.
# Idle keep-alive connections wait in cheroot's selector and hold no thread.
SERVING_THREADS = 64

_log = logging.getLogger(__name__)


class _DeferredHandshakeTLS(BuiltinSSLAdapter):
    """TLS whose handshake runs on the connection's worker thread, at its first read.

    cheroot's adapter shakes hands in the thread that accepts connections, where one silent client
    would stall every other one for the whole timeout.
    """

    def wrap(self, sock):
        tls = self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return tls, {"wsgi.url_scheme": "https", "HTTPS": "on"}


class _QuietServer(wsgi.Server):
    """cheroot's WSGI server, logging aborted connections and handshakes at debug, not to stderr."""

    def error_log(self, msg: str = "", level: int = 20, traceback: bool = False) -> None:
        _log.debug("simulator connection: %s", msg, exc_info=traceback)


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
        self._server: wsgi.Server | None = None
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
        tls = _DeferredHandshakeTLS(str(certificate.cert_path), str(certificate.key_path))
        tls.context.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.context.num_tickets = 0  # clients keep their connection alive; no sessions to resume

        # HTTP/1.1 keep-alive, as Partner Center itself offers: without it every call pays a TLS
        # handshake on both sides, and the simulator's costs would pass for the sync's.
        server = _QuietServer((self.host, self.port), PartnerCenterApp(self), numthreads=SERVING_THREADS,
                              timeout=CONNECTION_TIMEOUT_SECONDS)
        server.ssl_adapter = tls
        server.keep_alive_conn_limit = None  # every client's pool may keep its connections
        server.expiration_interval = 0.05  # its select() timeout, so stop() is prompt
        server.prepare()
        self.port = server.bind_addr[1]
        self._ca_path = certificate.ca_path
        self._server = server
        self._thread = threading.Thread(target=server.serve, name="partner-center-simulator", daemon=True)
        self._thread.start()
        self.webhooks.start(self.url, state_dir)
        return self

    def stop(self) -> None:
        """Stop serving and remove a temporary state folder."""
        self.webhooks.wait(timeout=5)  # deliveries in flight must not outlive the certificate URL
        if self._server is not None:
            self._server.stop()
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
