"""Organization events end to end: Azurite, the simulator, the loopback managed-identity endpoint
and the stand-in Event Grid topic over HTTPS (devstack/eventgrid)."""

from __future__ import annotations

import uuid

import pytest

from devstack.eventgrid import StandInTopic
from shared import app
from shared.settings import Settings
from shared.store import TableNames
from shared.sync.engine import Deadline
from shared.sync.stores import SyncStores
from devstack.local.identity import IdentityEndpoint

CLIENT_ID = "5f0c6a47-3d1e-4c55-9a11-0c8a7e1b2f01"


@pytest.fixture
def identity(monkeypatch):
    with IdentityEndpoint() as endpoint:
        for name, value in endpoint.environment.items():
            monkeypatch.setenv(name, value)
        yield endpoint


@pytest.fixture
def topic(tmp_path_factory):
    with StandInTopic(tmp_path_factory.mktemp("topic")) as running:
        yield running


@pytest.fixture
def event_env(simulator, topic, identity, storage_connection, tmp_path) -> dict[str, str]:
    """Settings of an app that publishes to the stand-in topic (both CAs trusted)."""
    bundle = tmp_path / "ca-bundle.pem"
    bundle.write_text(open(simulator.ca_path).read() + open(topic.ca_path).read())
    return {
        "SYNC_STORAGE_CONNECTION": storage_connection,
        "AzureWebJobsStorage": storage_connection,
        "PARTNER_CENTER_API_URL": simulator.url,
        "PARTNER_CENTER_AUTHORITY_URL": simulator.url,
        "PARTNER_CENTER_ACCOUNT_ID": "ev" + uuid.uuid4().hex[:8],
        "PARTNER_CENTER_TENANT_ID": simulator.partner_tenant_id,
        "PARTNER_CENTER_CLIENT_ID": simulator.client_id,
        "PARTNER_CENTER_CLIENT_SECRET": simulator.client_secret,
        "PARTNER_CENTER_PAGE_SIZE": "10",
        "REQUESTS_CA_BUNDLE": str(bundle),
        "PLATFORM_EVENTS__topicEndpointUri": topic.endpoint,
        "PLATFORM_EVENTS__credential": "managedidentity",
        "PLATFORM_EVENTS__clientId": CLIENT_ID,
        **identity.environment,
    }


@pytest.fixture
def wired(event_env, monkeypatch, table_prefix):
    """The App on that environment, its tables uniquely prefixed."""
    for name, value in event_env.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    stores = SyncStores.open(event_env["SYNC_STORAGE_CONNECTION"], TableNames().with_prefix(table_prefix),
                             events=True)
    built = app.App(settings, stores=stores)
    app.use(built)
    yield built
    stores.tables.delete_all()


def publish(wired: app.App, seconds: float = 30.0):
    return wired.publish_events(deadline=Deadline.starting_now(seconds))
