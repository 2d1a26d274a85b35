"""Test session: real Azurite, the Partner Center simulator over HTTPS, and a loopback-only guard."""

from __future__ import annotations

import ipaddress
import socket
import threading
import uuid

import pytest

from shared import app
from devstack.local.azurite import Azurite

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
_real_getaddrinfo = socket.getaddrinfo


def _loopback_only(address) -> None:
    if not isinstance(address, tuple):
        return  # unix sockets stay on this machine
    host = address[0]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ConnectionRefusedError(f"tests may only connect to loopback addresses, not {host!r}") from None
    if not ip.is_loopback:
        raise ConnectionRefusedError(f"tests may only connect to loopback addresses, not {host}")


def _guarded_connect(self, address):
    _loopback_only(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self, address):
    _loopback_only(address)
    return _real_connect_ex(self, address)


def _guarded_getaddrinfo(host, *args, **kwargs):
    # Names are resolved only when they are loopback: no DNS query leaves this machine.
    if host not in (None, "localhost") and not _is_ip(host):
        raise socket.gaierror(f"tests may not resolve {host!r}: only loopback traffic is allowed")
    return _real_getaddrinfo(host, *args, **kwargs)


def _is_ip(host) -> bool:
    try:
        ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host)
        return True
    except ValueError:
        return False


def pytest_addoption(parser):
    parser.addoption("--soak", type=int, default=0, metavar="ROUNDS",
                     help="run the randomized fault-and-crash test for ROUNDS rounds instead of the CI default")


@pytest.fixture
def soak_rounds(request) -> int:
    """Rounds of randomized faults: a few in CI, as many as asked for with --soak."""
    return request.config.getoption("--soak") or 8


@pytest.fixture(scope="session", autouse=True)
def loopback_only():
    """Every socket a test opens must stay on 127.0.0.0/8 (docs/reliability.md, Security)."""
    socket.socket.connect = _guarded_connect
    socket.socket.connect_ex = _guarded_connect_ex
    socket.getaddrinfo = _guarded_getaddrinfo
    yield
    socket.socket.connect = _real_connect
    socket.socket.connect_ex = _real_connect_ex
    socket.getaddrinfo = _real_getaddrinfo


@pytest.fixture(scope="session")
def azurite():
    """One in-memory Azurite for the session, on free loopback ports."""
    with Azurite() as running:
        yield running


@pytest.fixture
def storage_connection(azurite) -> str:
    return azurite.connection_string


@pytest.fixture
def table_prefix() -> str:
    """A unique prefix for this test's tables, so tests never see each other's rows."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def simulator(tmp_path_factory):
    """A fresh Partner Center simulator over HTTPS with a small seeded estate."""
    from devstack.simulator import PartnerCenterSimulator

    with PartnerCenterSimulator(customers=25, seed=7, state_dir=tmp_path_factory.mktemp("sim")) as sim:
        yield sim


@pytest.fixture(autouse=True)
def _fresh_app():
    """The worker's App is built afresh from the environment each test sets (shared/app.py)."""
    app.use(None)
    yield
    app.use(None)


@pytest.fixture
def dead_queue_connection(storage_connection) -> str:
    """``storage_connection`` with its queue endpoint on a loopback port nothing listens on (Queue
    Storage down); its tables are Azurite's."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    parts = [part for part in storage_connection.split(";") if part and not part.startswith("QueueEndpoint=")]
    return ";".join([*parts, f"QueueEndpoint=http://127.0.0.1:{port}/devstoreaccount1"]) + ";"


@pytest.fixture
def hung_table(azurite):
    """``hang(table)``: a connection string whose table endpoint goes through an HTTP relay to Azurite
    that never answers a request for ``table`` (that table unreachable: the client's read times out)."""
    import http.client
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    released = threading.Event()
    servers = []

    def hang(table: str) -> str:
        class Relay(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.split("?")[0].split("/")[2].split("(")[0] == table:
                    released.wait(60)  # no answer: the client gives up on its own timeout
                    self.close_connection = True
                    return
                upstream = http.client.HTTPConnection("127.0.0.1", azurite.table_port, timeout=30)
                try:
                    upstream.request(self.command, self.path, body, dict(self.headers.items()))
                    answer = upstream.getresponse()
                    data = answer.read()
                finally:
                    upstream.close()
                self.send_response(answer.status, answer.reason)
                for name, value in answer.getheaders():
                    if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_MERGE = do_HEAD = relay

        server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        parts = [part for part in azurite.connection_string.split(";")
                 if part and not part.startswith("TableEndpoint=")]
        return ";".join([*parts, f"TableEndpoint=http://127.0.0.1:{server.server_address[1]}/devstoreaccount1"]) + ";"

    yield hang
    released.set()
    for server in servers:
        server.shutdown()
        server.server_close()
