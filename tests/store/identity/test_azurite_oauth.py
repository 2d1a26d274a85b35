"""The offline stand-ins behave like Azure: Azurite refuses requests without a valid bearer token,
and the managed-identity endpoint is asked for storage tokens as the configured identity."""

from __future__ import annotations

import time
import uuid

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError

from shared.store.connections import StorageConnection

from .identity_endpoint import API_VERSION, STORAGE_RESOURCE


@pytest.fixture
def verify(azurite_certificate) -> str:
    return str(azurite_certificate.ca_path)


def test_azurite_refuses_a_request_without_credentials(azurite_oauth, verify):
    for url in (azurite_oauth.table_service_uri + "/Tables", azurite_oauth.queue_service_uri + "?comp=list"):
        answer = requests.get(url, headers={"Accept": "application/json"}, verify=verify, timeout=10)
        assert answer.status_code == 403, url


def test_azurite_refuses_a_bearer_token_from_an_unknown_issuer_or_for_another_audience(
        azurite_oauth, identity_endpoint, verify):
    now = int(time.time())
    good = identity_endpoint.token(STORAGE_RESOURCE, "client")
    wrong_audience = identity_endpoint.token("https://vault.azure.net", "client")
    expired = identity_endpoint.token(STORAGE_RESOURCE, "client", issued_at=now - 7200)
    url = azurite_oauth.table_service_uri + "/Tables"

    def status(token: str) -> int:
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", "x-ms-version": "2019-02-02"}
        return requests.get(url, headers=headers, verify=verify, timeout=10).status_code

    assert status("not-a-jwt") == 403
    assert status(wrong_audience) == 403
    assert status(expired) == 403
    assert status(good) == 200


def test_a_client_gets_its_token_from_the_identity_endpoint_as_the_configured_identity(
        function_app_platform, azurite_oauth, trusted_azurite):
    client_id = str(uuid.uuid4())  # a new identity: its credential has no cached token yet
    connection = StorageConnection("SYNC_STORAGE", table_service_uri=azurite_oauth.table_service_uri,
                                   client_id=client_id)
    with connection.table_service() as service:
        service.create_table("t" + uuid.uuid4().hex[:12])
    calls = [call for call in function_app_platform.requests if call.client_id == client_id]
    assert len(calls) == 1
    assert (calls[0].resource, calls[0].api_version, calls[0].header_ok, calls[0].status) == \
        (STORAGE_RESOURCE, API_VERSION, True, 200)


def test_a_wrong_identity_header_gets_no_token_and_storage_is_never_reached(
        function_app_platform, azurite_oauth, trusted_azurite, monkeypatch):
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-platform-secret")
    connection = StorageConnection("SYNC_STORAGE", table_service_uri=azurite_oauth.table_service_uri,
                                   client_id=str(uuid.uuid4()))
    with connection.table_service(retry_total=0) as service, pytest.raises(ClientAuthenticationError):
        service.create_table("t" + uuid.uuid4().hex[:12])
    assert function_app_platform.requests[-1].status == 401


def test_a_connection_string_still_works_against_the_oauth_azurite(azurite_oauth, trusted_azurite):
    with StorageConnection.from_connection_string(azurite_oauth.connection_string).table_service() as service:
        service.create_table("t" + uuid.uuid4().hex[:12])


@pytest.fixture
def trusted_azurite(azurite_certificate, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(azurite_certificate.ca_path))


def test_without_the_bundle_azurites_certificate_is_not_trusted(azurite_oauth, without_storage_settings, monkeypatch):
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    connection = StorageConnection.from_connection_string(azurite_oauth.connection_string)
    with connection.table_service(retry_total=0) as service, pytest.raises(ServiceRequestError) as raised:
        service.create_table("t" + uuid.uuid4().hex[:12])
    assert "CERTIFICATE_VERIFY_FAILED" in str(raised.value)
