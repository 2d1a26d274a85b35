"""Webhooks end to end: the simulator delivers signed events over real sockets to the registered
receiver function, served by the local Functions server, storing into Azurite.

Each test configures the app for one uniquely named account that is the simulator's partner, so
its organizations and webhook events sit in their own partitions.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from dataclasses import dataclass, replace
from typing import Callable

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from shared import app
from devstack.local.queues import QueueListeners
from devstack.local.server import LocalServer
from devstack.simulator import PartnerCenterSimulator
from shared.host_config import queue_options
from shared.sync.stores import SyncStores
from shared.webhooks.queue import EVENT_QUEUE, POISON_QUEUE
from shared.webhooks.store import WebhookEventStore


@dataclass
class Receiver:
    """The receiver as Partner Center sees it, and the tables behind it."""

    sim: PartnerCenterSimulator
    account_id: str
    url: str
    stores: SyncStores
    events: WebhookEventStore
    queue: QueueClient
    poison: QueueClient

    def queued(self) -> list[dict]:
        """The messages waiting in ``webhook-events`` (visible ones), decoded."""
        return [json.loads(base64.b64decode(m.content)) for m in self.queue.peek_messages(max_messages=32)]

    def organization(self, tenant_id: str) -> dict | None:
        return self.stores.organizations.get(self.account_id, tenant_id)

    def stored_events(self) -> list[dict]:
        table = self.events.service.get_table_client(self.events.table_name)
        return list(table.query_entities("PartitionKey eq @pk", parameters={"pk": self.account_id}))

    def stored_organizations(self) -> list[dict]:
        return list(self.stores.organizations.list(self.account_id))


@pytest.fixture(scope="module")
def functions_server():
    """The registered HTTP functions on a real loopback socket."""
    with LocalServer() as server:
        yield server


@pytest.fixture
def event_queues(storage_connection):
    """``webhook-events`` and its poison queue, emptied of what earlier tests left."""
    clients = [QueueClient.from_connection_string(storage_connection, name) for name in (EVENT_QUEUE, POISON_QUEUE)]
    for client in clients:
        try:
            client.create_queue()
        except ResourceExistsError:
            client.clear_messages()
    yield clients
    for client in clients:
        client.close()


@pytest.fixture
def receiver(simulator, functions_server, storage_connection, event_queues, monkeypatch) -> Receiver:
    """The app configured for the simulator's partner, trusting the simulator's CA for webhooks,
    with the partner's webhook registered at the receiver's URL. No queue trigger listens yet
    (see ``listening``): as if the instance that stored the event died before processing it."""
    account_id = "acct-" + uuid.uuid4().hex[:12]
    monkeypatch.delenv("PARTNER_CENTER_ACCOUNTS", raising=False)
    settings = {
        "AzureWebJobsStorage": storage_connection,
        "SYNC_STORAGE_CONNECTION": storage_connection,
        "PARTNER_CENTER_ACCOUNT_ID": account_id,
        "PARTNER_CENTER_API_URL": simulator.url,
        "PARTNER_CENTER_AUTHORITY_URL": simulator.url,
        "PARTNER_CENTER_TENANT_ID": simulator.partner_tenant_id,
        "PARTNER_CENTER_CLIENT_ID": simulator.client_id,
        "PARTNER_CENTER_CLIENT_SECRET": simulator.client_secret,
        "REQUESTS_CA_BUNDLE": simulator.ca_path,
        "WEBHOOK_CERTIFICATE_HOSTS": f"127.0.0.1:{simulator.port}",
        "WEBHOOK_TRUST_ANCHORS": simulator.ca_path,
        "WEBHOOK_CERTIFICATE_ISSUER": "Partner Center Simulator",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    app.use(None)
    app.use(None)
    simulator.set_webhook_delivery(attempts=3, backoff=0.05)
    url = f"{functions_server.url}/api/partner-center/events/{account_id}"
    simulator.register_webhook(url)
    app_settings = app.current().settings
    yield Receiver(simulator, account_id, url, app.current().stores, app.current().events,
                   *event_queues)
    # Nothing may keep talking to a simulator that is about to stop.
    assert simulator.wait_for_webhooks(30)
    app.use(None)


@pytest.fixture
def listening(receiver):
    """The webhook-events queue trigger listening, as on a running host; a failed message is
    retried after 1 s instead of host.json's visibilityTimeout."""
    options = replace(queue_options(), visibility_timeout_seconds=1)
    with QueueListeners(["process_webhook_event"], options=options) as listeners:
        yield listeners


def eventually(check: Callable[[], object], timeout: float = 10.0) -> object:
    """``check()``'s first truthy value within ``timeout`` seconds (polling), else fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s: {check}")
        time.sleep(0.05)
