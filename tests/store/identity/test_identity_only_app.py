"""The whole app with only identity-based storage settings (no connection string, no key), against
Azurite in OAuth mode through ManagedIdentityCredential and the loopback identity endpoint:
a full sync, an incremental run dispatched through the queue, status, the HTTP routes (sync now
and a signed webhook event among them)."""

from __future__ import annotations

import json
import os

import pytest

from shared import app
from devstack.local.host import call_http, fire_timer
from devstack.local.queues import COMPLETED, QueueTriggerRunner
from devstack.local.server import LocalServer
from shared.cli import main as cli
from shared.sync.engine import FULL, INCREMENTAL
from tests.functions.conftest import answer, http_request

from .identity_endpoint import STORAGE_RESOURCE


def test_only_identity_settings_hold_the_storage(identity_app):
    storage = {name: value for name, value in os.environ.items() if "Storage" in name or "STORAGE" in name}
    assert storage and not any("AccountKey" in value or "UseDevelopmentStorage" in value for value in storage.values())
    assert "SYNC_STORAGE_CONNECTION" not in storage and "AzureWebJobsStorage" not in storage
    assert app.current().storage.identity_based


@pytest.mark.slow
def test_a_full_sync_from_the_command_line(identity_app, simulator, identity_endpoint, client_id, capsys):
    assert cli(["sync", "full", "--json"]) == 0
    [result] = json.loads(capsys.readouterr().out)
    assert (result["account"], result["mode"], result["outcome"]) == (identity_app, FULL, "succeeded")
    assert result["counts"]["created"] == len(simulator.customers())
    stored = sorted(org["RowKey"] for org in app.current().stores.organizations.list(identity_app))
    assert stored == sorted(customer["id"] for customer in simulator.customers())
    assert any(call.client_id == client_id and call.resource == STORAGE_RESOURCE and call.status == 200
               for call in identity_endpoint.requests)


@pytest.mark.slow
def test_an_incremental_run_through_the_queue_trigger(identity_app, simulator):
    stores = app.current().stores
    fire_timer("full_reconciliation")
    with QueueTriggerRunner("process_sync_unit", retry_after_seconds=0) as runner:
        assert [d.result for d in runner.drain(timeout=60)] == [COMPLETED]
        tenant = simulator.accept_relationship(company_name="Fabrikam Identity Ltd")
        fire_timer("incremental_sync")
        assert [d.result for d in runner.drain(timeout=60)] == [COMPLETED]
    assert stores.organizations.get(identity_app, tenant)["CompanyName"] == "Fabrikam Identity Ltd"
    latest = stores.runs.latest(identity_app, limit=5)
    assert [(run.mode, run.outcome) for run in latest[:2]] == [(INCREMENTAL, "succeeded"), (FULL, "succeeded")]
    assert latest[0].counts["created"] == 1


@pytest.mark.slow
def test_status_from_the_command_line_and_the_http_routes(identity_app, simulator, capsys):
    assert cli(["sync", "full"]) == 0
    capsys.readouterr()
    assert cli(["status", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert identity_app in json.dumps(printed)

    everyone = call_http("sync_status_all", http_request("GET", "ops/status"))
    assert everyone.status_code == 200
    [account] = answer(everyone)["accounts"]
    assert account["account"] == identity_app and account["last_full"]["outcome"] == "succeeded"
    # The poison queue (AzureWebJobsStorage) and the webhook inbox (SYNC_STORAGE) were read, too.
    assert account["parked_units"] == [] and "problem" not in account["webhook_events"]

    one = call_http("sync_status", http_request("GET", f"ops/accounts/{identity_app}/status",
                                                route_params={"accountId": identity_app}))
    assert one.status_code == 200 and answer(one)["last_full"]["outcome"] == "succeeded"

    customer = simulator.customers()[3]
    route = {"accountId": identity_app, "customerTenantId": customer["id"]}
    organization = call_http("get_organization", http_request(
        "GET", f"ops/accounts/{identity_app}/organizations/{customer['id']}", route_params=route))
    assert organization.status_code == 200
    stored = answer(organization)

    synced = call_http("sync_customer", http_request(
        "POST", f"ops/accounts/{identity_app}/organizations/{customer['id']}/sync", route_params=route))
    assert synced.status_code == 200

    edit = {"customerTenantId": customer["id"], "primaryContact": {"email": "someone.else@example.com"}}
    validated = call_http("validate_contact_edit", http_request("POST", "contacts/validate", edit))
    assert validated.status_code == 200
    verdict = answer(validated)
    assert verdict["microsoftCustomer"] is True and verdict["allowed"] is False, stored


@pytest.mark.slow
def test_sync_now_over_http_runs_on_identity_storage(identity_app):
    route = {"accountId": identity_app}
    accepted = call_http("sync_now", http_request("POST", f"ops/accounts/{identity_app}/sync", route_params=route,
                                                  params={"mode": "full"}))
    assert accepted.status_code == 202
    # The unit went on the sync-units queue over identity-based storage; the queue trigger runs it.
    with QueueTriggerRunner("process_sync_unit", retry_after_seconds=0) as runner:
        assert [d.result for d in runner.drain(timeout=60)] == [COMPLETED]
    [run] = app.current().stores.runs.latest(identity_app, limit=1)
    assert (run.mode, run.outcome) == (FULL, "succeeded")


@pytest.fixture
def functions_server():
    with LocalServer() as server:
        yield server


def test_a_webhook_event_is_stored_and_synced_on_identity_storage(identity_app, simulator, functions_server,
                                                                   monkeypatch):
    monkeypatch.setenv("WEBHOOK_CERTIFICATE_HOSTS", f"127.0.0.1:{simulator.port}")
    monkeypatch.setenv("WEBHOOK_TRUST_ANCHORS", simulator.ca_path)
    monkeypatch.setenv("WEBHOOK_CERTIFICATE_ISSUER", "Partner Center Simulator")
    app.use(None)
    simulator.set_webhook_delivery(attempts=3, backoff=0.05)
    simulator.register_webhook(f"{functions_server.url}/api/partner-center/events/{identity_app}")
    tenant = simulator.accept_relationship(company_name="Webhook Identity Ltd")
    assert simulator.wait_for_webhooks(30)
    assert [d.status for d in simulator.webhook_deliveries()] == [200]
    # Stored before the 200, then queued on webhook-events (identity-based AzureWebJobsStorage).
    with QueueTriggerRunner("process_webhook_event", retry_after_seconds=0) as runner:
        assert [d.result for d in runner.drain(timeout=60)] == [COMPLETED]
    organization = app.current().stores.organizations.get(identity_app, tenant)
    assert organization["CompanyName"] == "Webhook Identity Ltd"
    events = app.current().events
    rows = list(events.service.get_table_client(events.table_name).query_entities(
        "PartitionKey eq @pk", parameters={"pk": identity_app}))
    assert [row["Status"] for row in rows] == ["processed"]
