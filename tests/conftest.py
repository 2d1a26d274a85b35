"""Test session: real Azurite, the Partner Center simulator over HTTPS, and a loopback-only guard."""

from __future__ import annotations

import ipaddress
import socket
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
