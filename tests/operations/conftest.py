"""Sync units through a real queue: Azurite's queue service, the simulator, the real function index.

Each test gives its accounts unique ids (organizations and runs are partitioned by account) and
starts from empty ``sync-units`` queues.
"""

from __future__ import annotations

import json
import uuid

import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from shared import app
from devstack.local.queues import QueueTriggerRunner
from shared.operations.units import POISON_QUEUE, UNIT_QUEUE

SINGLE_ACCOUNT_SETTINGS = ("PARTNER_CENTER_ACCOUNT_ID", "PARTNER_CENTER_TENANT_ID", "PARTNER_CENTER_CLIENT_ID",
                           "PARTNER_CENTER_CLIENT_SECRET")


@pytest.fixture
def queues(storage_connection):
    """The unit queue and its poison queue, empty."""
    clients = {}
    for name in (UNIT_QUEUE, POISON_QUEUE):
        client = QueueClient.from_connection_string(storage_connection, name)
        try:
            client.create_queue()
        except ResourceExistsError:  # left by an earlier test: empty it instead
            client.clear_messages()
        clients[name] = client
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture
def queued_app(monkeypatch, storage_connection, simulator, queues):
    """The app on Azurite and the simulator, dispatching timer runs as queue units."""
    for name in SINGLE_ACCOUNT_SETTINGS + ("PARTNER_CENTER_ACCOUNTS",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection)
    monkeypatch.setenv("SYNC_STORAGE_CONNECTION", storage_connection)
    monkeypatch.setenv("PARTNER_CENTER_API_URL", simulator.url)
    monkeypatch.setenv("PARTNER_CENTER_AUTHORITY_URL", simulator.url)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_path)
    monkeypatch.setenv("SYNC_DISPATCH", "queue")
    app.use(None)
    app.use(None)
    yield simulator
    app.use(None)


@pytest.fixture
def configure_accounts(queued_app, monkeypatch):
    """``configure_accounts(customers=[25, 6], bad_secret={1})`` → the account ids, in order.

    The first account is the simulator's default partner (25 customers); each further one is a
    partner added with the given number of customers. An index in ``bad_secret`` gets a wrong secret.
    """
    prefix = "u" + uuid.uuid4().hex[:8]

    def configure(customers: list[int], bad_secret: frozenset[int] = frozenset()) -> list[str]:
        entries = []
        for index, count in enumerate(customers):
            partner = queued_app.partners()[0] if index == 0 else queued_app.add_partner(customers=count)
            setting = f"{prefix.upper()}_A{index}_SECRET"
            monkeypatch.setenv(setting, "wrong-secret" if index in bad_secret else partner.client_secret)
            entries.append({"id": f"{prefix}-a{index}", "kind": "direct_provider", "tenantId": partner.tenant_id,
                            "clientId": partner.client_id, "clientSecretSetting": setting})
        monkeypatch.setenv("PARTNER_CENTER_ACCOUNTS", json.dumps(entries))
        app.use(None)
        assert app.current().settings.account_errors == ()
        return [entry["id"] for entry in entries]

    return configure


@pytest.fixture
def runner(queued_app):
    """The local queue trigger for the registered unit function; failed units are retried at once."""
    with QueueTriggerRunner("process_sync_unit", retry_after_seconds=0) as running:
        yield running


@pytest.fixture
def stores(queued_app):
    return app.current().stores
