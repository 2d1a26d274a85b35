"""A managed identity outside a Function App would ask the instance metadata endpoint
(169.254.169.254), an address off this machine: the test session's socket guard must stop it."""

from __future__ import annotations

import socket
import uuid

import pytest
from azure.core.exceptions import ClientAuthenticationError

from shared.store.connections import StorageConnection

METADATA_ADDRESS = "169.254.169.254"


@pytest.fixture
def refused_connections(monkeypatch) -> list[tuple[str, str]]:
    """Every connection attempt the guard refused: (host, message). Wraps the guarded connect."""
    refused: list[tuple[str, str]] = []
    guarded = socket.socket.connect

    def recording_connect(sock, address):
        try:
            return guarded(sock, address)
        except ConnectionRefusedError as exc:
            refused.append((address[0] if isinstance(address, tuple) else str(address), str(exc)))
            raise

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    return refused


@pytest.mark.slow
def test_a_credential_without_the_identity_endpoint_is_stopped_by_the_socket_guard(
        without_storage_settings, azurite_oauth, azurite_certificate, refused_connections, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azurite_certificate.ca_path))
    # No IDENTITY_ENDPOINT: azure-identity falls through to the instance metadata service.
    connection = StorageConnection("SYNC_STORAGE", table_service_uri=azurite_oauth.table_service_uri,
                                   client_id=str(uuid.uuid4()))
    with connection.table_service(retry_total=0) as service, pytest.raises(ClientAuthenticationError):
        service.create_table("t" + uuid.uuid4().hex[:12])
    assert refused_connections, "the credential reached no address at all"
    assert {host for host, _ in refused_connections} == {METADATA_ADDRESS}
    assert all("tests may only connect to loopback addresses" in message for _, message in refused_connections)


def test_the_socket_guard_is_on():
    with socket.socket() as sock, pytest.raises(ConnectionRefusedError, match="loopback"):
        sock.connect((METADATA_ADDRESS, 80))
