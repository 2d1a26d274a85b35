"""Identity-based storage, proved offline: Azurite over https with basic OAuth (it refuses requests
without a valid bearer token), a loopback App Service managed-identity endpoint, and the app with
only identity-based storage settings: no connection string, no key.

One Azurite and one identity endpoint serve the whole session; each test gets a fresh simulator,
its own account id (organizations and runs are partitioned by account) and empty unit queues.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceExistsError

from shared import app
from devstack.local.azurite import Azurite
from devstack.simulator.certificates import ServerCertificate, issue_server_certificate
from shared.store.connections import (HOST_STORAGE, SYNC_STORAGE, SYNC_STORAGE_CONNECTION, StorageConnection,
                                      binding_storage)
from shared.operations.units import POISON_QUEUE, UNIT_QUEUE

from .identity_endpoint import IdentityEndpoint

STORAGE_PREFIXES = (SYNC_STORAGE + "__", HOST_STORAGE + "__")
ACCOUNT_SETTINGS = ("PARTNER_CENTER_ACCOUNTS", "PARTNER_CENTER_ACCOUNT_ID", "PARTNER_CENTER_TENANT_ID",
                    "PARTNER_CENTER_CLIENT_ID", "PARTNER_CENTER_CLIENT_SECRET")


@pytest.fixture(scope="session")
def azurite_certificate(tmp_path_factory) -> ServerCertificate:
    """A server certificate for 127.0.0.1 from a CA generated for this session."""
    return issue_server_certificate(tmp_path_factory.mktemp("azurite-tls"), ["127.0.0.1"])


@pytest.fixture(scope="session")
def azurite_oauth(azurite_certificate):
    """Azurite over https with ``--oauth basic``, in memory, on free loopback ports."""
    with Azurite(certificate=(azurite_certificate.cert_path, azurite_certificate.key_path)) as running:
        yield running


@pytest.fixture(scope="session")
def identity_endpoint():
    with IdentityEndpoint() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def client_id() -> str:
    """The user-assigned identity's client id the settings name."""
    return str(uuid.uuid4())


@pytest.fixture
def without_storage_settings(monkeypatch):
    """No storage setting of the developer's shell leaks in (connection strings above all)."""
    for name in list(os.environ):
        if name in (SYNC_STORAGE_CONNECTION, HOST_STORAGE) or name.startswith(STORAGE_PREFIXES):
            monkeypatch.delenv(name)
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "IDENTITY_SERVER_THUMBPRINT", "MSI_ENDPOINT",
                 "MSI_SECRET", "IMDS_ENDPOINT", "AZURE_POD_IDENTITY_AUTHORITY_HOST"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def function_app_platform(identity_endpoint, without_storage_settings, monkeypatch):
    """What a Function App's platform gives the code: the managed-identity endpoint and its secret."""
    for name, value in identity_endpoint.environment.items():
        monkeypatch.setenv(name, value)
    return identity_endpoint


@pytest.fixture
def identity_storage(function_app_platform, azurite_oauth, client_id, monkeypatch) -> dict[str, str]:
    """Only identity-based storage settings, the way infra would set them."""
    settings = {
        f"{SYNC_STORAGE}__tableServiceUri": azurite_oauth.table_service_uri,
        f"{SYNC_STORAGE}__credential": "managedidentity",
        f"{SYNC_STORAGE}__clientId": client_id,
        f"{HOST_STORAGE}__blobServiceUri": azurite_oauth.blob_service_uri,
        f"{HOST_STORAGE}__queueServiceUri": azurite_oauth.queue_service_uri,
        f"{HOST_STORAGE}__tableServiceUri": azurite_oauth.table_service_uri,
        f"{HOST_STORAGE}__credential": "managedidentity",
        f"{HOST_STORAGE}__clientId": client_id,
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    app.use(None)
    yield settings
    app.use(None)


@pytest.fixture
def trusted(azurite_certificate, simulator, tmp_path, monkeypatch) -> Path:
    """``REQUESTS_CA_BUNDLE`` trusting both the simulator's and Azurite's CAs (azure-core honours it)."""
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_bytes(Path(simulator.ca_path).read_bytes() + azurite_certificate.ca_path.read_bytes())
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    return bundle


@pytest.fixture
def identity_app(identity_storage, trusted, simulator, monkeypatch, tmp_path):
    """The app on the simulator's partner with identity-only storage and queue dispatch; yields the account id."""
    for name in ACCOUNT_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    account_id = "id-" + uuid.uuid4().hex[:12]
    monkeypatch.setenv("PARTNER_CENTER_ACCOUNT_ID", account_id)
    monkeypatch.setenv("PARTNER_CENTER_API_URL", simulator.url)
    monkeypatch.setenv("PARTNER_CENTER_AUTHORITY_URL", simulator.url)
    monkeypatch.setenv("PARTNER_CENTER_TENANT_ID", simulator.partner_tenant_id)
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_ID", simulator.client_id)
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_SECRET", simulator.client_secret)
    monkeypatch.setenv("SYNC_DISPATCH", "queue")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")  # operator routes sign their callers in
    monkeypatch.chdir(tmp_path)  # the CLI would read a developer's local.settings.json from the work tree
    _empty_unit_queues(binding_storage(HOST_STORAGE, os.environ))
    app.use(None)
    app.use(None)
    yield account_id
    app.use(None)


def _empty_unit_queues(connection: StorageConnection) -> None:
    for name in (UNIT_QUEUE, POISON_QUEUE):
        with connection.queue(name) as queue:
            try:
                queue.create_queue()
            except ResourceExistsError:
                queue.clear_messages()
