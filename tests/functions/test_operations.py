"""Operators' routes under /api/ops, through the registered functions, on Azurite and the simulator."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from shared import app
from devstack.local.host import call_http
from devstack.local.queues import COMPLETED, QueueTriggerRunner
from tests.functions.conftest import OPERATOR_SIGNATURE, answer, http_request, is_problem


def ops(name: str, method: str, route: str, *, account: str, tenant: str | None = None, held: str | None = None,
        params: dict | None = None, headers: dict | None = None):
    route_params = {"accountId": account}
    if tenant is not None:
        route_params["customerTenantId"] = tenant
    if held is not None:
        route_params["heldId"] = held
    return call_http(name, http_request(method, route, route_params=route_params, params=params, headers=headers))


def organization(account: str, tenant: str):
    return ops("get_organization", "GET", "ops/accounts/x/organizations/y", account=account, tenant=tenant)


def exclude(account: str, tenant: str):
    return ops("exclude_organization", "POST", "ops/x/exclude", account=account, tenant=tenant)


def include(account: str, tenant: str):
    return ops("include_organization", "POST", "ops/x/include", account=account, tenant=tenant)


def sync_now(account: str, **params):
    return ops("sync_now", "POST", "ops/x/sync", account=account, params=params)


# -- reading -----------------------------------------------------------------------------------

def test_an_organization_reads_as_the_platform_sees_it(configured, seed):
    tenant = seed()
    response = organization(configured, tenant)
    body = answer(response)
    assert response.status_code == 200 and response.headers["ETag"]
    assert body["customerTenantId"] == tenant and body["status"] == "active"
    assert body["properties"]["PrimaryEmail"] == body["properties"]["BillingEmail"] == "Ada.Lovelace@Contoso.com"


def test_an_unknown_organization_is_a_404(configured):
    response = organization(configured, str(uuid.uuid4()))
    assert response.status_code == 404 and is_problem(response)


def test_a_non_guid_tenant_in_the_route_is_a_400(configured):
    response = organization(configured, "not-a-guid")
    assert response.status_code == 400 and is_problem(response)


def test_an_account_that_is_not_configured_is_a_404(configured):
    response = organization("no-such-account", str(uuid.uuid4()))
    assert response.status_code == 404 and "no-such-account" in answer(response)["detail"]


def test_status_of_one_account_lists_runs_failures_and_held_deletions(configured):
    response = ops("sync_status", "GET", "ops/x/status", account=configured)
    body = answer(response)
    assert response.status_code == 200 and body["account"] == configured
    assert {"last_incremental", "last_full", "lag_seconds", "failing", "quarantined", "held"} <= set(body)


def test_status_of_all_accounts_covers_each_configured_account(configured):
    response = call_http("sync_status_all", http_request("GET", "ops/status"))
    assert [a["account"] for a in answer(response)["accounts"]] == [configured]


# -- exclusion ---------------------------------------------------------------------------------

def test_an_excluded_organization_is_kept_and_marked_excluded(configured, seed, stores):
    tenant = seed()
    response = exclude(configured, tenant)
    body = answer(response)
    assert response.status_code == 200 and body["status"] == "excluded" and body["changed"] is True
    assert stores.organizations.get(configured, tenant)["PrimaryEmail"] == "Ada.Lovelace@Contoso.com"


def test_exclusion_and_inclusion_are_in_the_change_log(configured, seed, stores):
    tenant = seed()
    exclude(configured, tenant)
    include(configured, tenant)
    entries = stores.changes.for_organization(configured, tenant)
    assert [(e.kind, e.changes["Status"], e.by) for e in entries[:2]] == [
        ("include", ("excluded", "active"), OPERATOR_SIGNATURE), ("exclude", ("active", "excluded"), OPERATOR_SIGNATURE)]
    history = answer(ops("organization_changes", "GET", "ops/x/changes", account=configured, tenant=tenant))
    assert [(c["kind"], c["by"]) for c in history["changes"][:2]] == [("include", OPERATOR_SIGNATURE),
                                                                     ("exclude", OPERATOR_SIGNATURE)]
    runs = answer(ops("recent_runs", "GET", "ops/x/runs", account=configured))["runs"]
    assert [(r["mode"], r["by"]) for r in runs[:2]] == [("include", OPERATOR_SIGNATURE), ("exclude", OPERATOR_SIGNATURE)]


def test_excluding_twice_changes_nothing(configured, seed):
    tenant = seed()
    exclude(configured, tenant)
    again = exclude(configured, tenant)
    assert again.status_code == 200 and answer(again)["changed"] is False


def test_an_included_organization_is_active_again(configured, seed):
    tenant = seed(status="excluded")
    response = include(configured, tenant)
    assert response.status_code == 200 and answer(response)["status"] == "active"


def test_an_ended_organization_cannot_be_included(configured, seed):
    response = include(configured, seed(status="relationship_ended"))
    assert response.status_code == 409 and is_problem(response)


def test_excluding_an_unknown_organization_is_a_404(configured):
    response = exclude(configured, str(uuid.uuid4()))
    assert response.status_code == 404 and is_problem(response)


def test_an_excluded_organization_is_not_overwritten_by_a_sync(with_partner_center, configured, stores):
    sim = with_partner_center
    tenant = sim.customers()[3]["id"]
    ops("sync_customer", "POST", "ops/x/sync", account=configured, tenant=tenant)
    exclude(configured, tenant)
    sim.update_billing_profile(tenant, {"lastName": "Changed-In-Partner-Center"})
    response = ops("sync_customer", "POST", "ops/x/sync", account=configured, tenant=tenant)
    assert answer(response)["run"]["counts"]["excluded_skipped"] == 1
    assert stores.organizations.get(configured, tenant)["PrimaryLastName"] != "Changed-In-Partner-Center"
    include(configured, tenant)
    refreshed = ops("sync_customer", "POST", "ops/x/sync", account=configured, tenant=tenant)
    assert answer(refreshed)["properties"]["PrimaryLastName"] == "Changed-In-Partner-Center"


# -- on-demand sync of one customer ------------------------------------------------------------

def test_syncing_one_customer_answers_with_its_organization(with_partner_center, configured):
    sim = with_partner_center
    tenant = sim.accept_relationship(company_name="Northwind Traders")
    sim.reset_counters()
    response = ops("sync_customer", "POST", "ops/x/sync", account=configured, tenant=tenant)
    body = answer(response)
    assert response.status_code == 200 and body["properties"]["CompanyName"] == "Northwind Traders"
    assert body["run"]["counts"]["created"] == 1 and sim.counters()["get_customer"] == 1


def test_syncing_a_customer_partner_center_does_not_know_is_a_404(with_partner_center, configured):
    response = ops("sync_customer", "POST", "ops/x/sync", account=configured, tenant=str(uuid.uuid4()))
    assert response.status_code == 404 and is_problem(response)


@pytest.mark.slow
def test_a_partner_center_outage_during_a_customer_sync_is_a_503_with_retry_after(with_partner_center, configured):
    sim = with_partner_center
    tenant = sim.customers()[0]["id"]
    sim.inject("get_customer", "status", status=503, times=10)
    response = ops("sync_customer", "POST", "ops/x/sync", account=configured, tenant=tenant)
    assert response.status_code == 503 and is_problem(response) and response.headers["Retry-After"]


# -- sync now ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_sync_now_answers_202_and_a_queued_unit_runs_the_sync_in_a_queue_trigger(with_partner_center, configured,
                                                                                    stores, unit_queue):
    response = sync_now(configured)
    body = answer(response)
    assert response.status_code == 202 and response.headers["Location"].endswith(f"/{configured}/status")
    assert body["queue"] == "sync-units" and body["messageId"]
    assert stores.runs.latest(configured, limit=1) == []  # nothing ran while answering

    [message] = unit_queue.peek_messages(max_messages=32)
    unit = json.loads(base64.b64decode(message.content))
    assert message.id == body["messageId"]
    assert (unit["account"], unit["mode"]) == (configured, "incremental")
    with QueueTriggerRunner("process_sync_unit") as runner:
        [delivery] = runner.drain(timeout=60)
    assert delivery.result == COMPLETED
    [run] = stores.runs.latest(configured, limit=1)  # (an account's first run is a full one)
    assert (run.outcome, run.counts["created"]) == ("succeeded", 25)


def test_sync_now_is_recorded_with_who_asked_and_shows_in_status(configured, stores, unit_queue):
    response = sync_now(configured)
    assert response.status_code == 202 and answer(response)["by"] == OPERATOR_SIGNATURE
    status = answer(ops("sync_status", "GET", "ops/x/status", account=configured))
    assert status["last_sync_now"]["by"] == OPERATOR_SIGNATURE
    assert status["last_sync_now"]["at"] == answer(response)["acceptedAt"]


def test_sync_now_of_a_full_reconciliation_queues_a_full_unit(configured, unit_queue):
    assert sync_now(configured, mode="full").status_code == 202
    [message] = unit_queue.peek_messages(max_messages=32)
    assert json.loads(base64.b64decode(message.content))["mode"] == "full"


def test_sync_now_without_a_queue_connection_is_a_503_naming_the_setting_and_starts_no_cool_down(
        configured, stores, monkeypatch):
    monkeypatch.delenv("AzureWebJobsStorage")
    app.use(None)
    response = sync_now(configured)
    assert response.status_code == 503 and "AzureWebJobsStorage" in answer(response)["detail"]
    assert stores.state.last_manual_request(configured) is None


def test_sync_now_within_the_cool_down_is_a_429_with_retry_after(configured, stores, monkeypatch):
    monkeypatch.setenv("SYNC_NOW_COOLDOWN_SECONDS", "600")
    app.use(None)
    stores.state.record_manual_request(configured, datetime.now(timezone.utc) - timedelta(seconds=100))
    response = sync_now(configured)
    assert response.status_code == 429 and is_problem(response)
    assert 495 <= int(response.headers["Retry-After"]) <= 500


def test_sync_now_after_the_cool_down_is_accepted(configured, stores, monkeypatch, unit_queue):
    monkeypatch.setenv("SYNC_NOW_COOLDOWN_SECONDS", "60")
    app.use(None)
    stores.state.record_manual_request(configured, datetime.now(timezone.utc) - timedelta(seconds=61))
    assert sync_now(configured).status_code == 202


def test_a_broken_cool_down_setting_is_a_503_naming_it(configured, monkeypatch):
    monkeypatch.setenv("SYNC_NOW_COOLDOWN_SECONDS", "soon")
    app.use(None)
    response = sync_now(configured)
    assert response.status_code == 503 and "SYNC_NOW_COOLDOWN_SECONDS" in answer(response)["detail"]


def test_sync_now_refuses_an_unknown_mode(configured):
    response = sync_now(configured, mode="everything")
    assert response.status_code == 400 and is_problem(response)


# -- held deletions ----------------------------------------------------------------------------

@pytest.fixture
def held(with_partner_center, configured, seed, stores):
    """A held ending of three active organizations (approving builds the account's sync, so the
    account points at the simulator: nothing may reach the real Entra ID)."""
    tenants = [seed() for _ in range(3)]
    run = stores.runs.start(configured, "full")
    return stores.held.hold(configured, run.run_id, tenants, active_count=3), tenants


def decide(decision: str, account: str, held_id: str):
    return ops(f"{decision}_held_deletion", "POST", f"ops/x/held/y/{decision}", account=account, held=held_id)


def test_an_approved_held_deletion_ends_its_organizations(configured, held, stores):
    held_id, tenants = held
    response = decide("approve", configured, held_id)
    assert response.status_code == 200 and answer(response)["run"]["counts"]["ended"] == 3
    assert {stores.organizations.get(configured, t)["Status"] for t in tenants} == {"relationship_ended"}


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_a_decision_records_the_signed_in_operators_name_and_object_id(configured, held, stores, decision):
    held_id, _ = held
    response = decide(decision, configured, held_id)
    assert response.status_code == 200 and answer(response)["by"] == OPERATOR_SIGNATURE
    assert stores.held.get(configured, held_id).decided_by == OPERATOR_SIGNATURE


def test_the_endings_of_an_approval_are_in_the_change_log_with_who_approved(configured, held, stores):
    held_id, tenants = held
    decide("approve", configured, held_id)
    for tenant in tenants:
        [ending] = [e for e in stores.changes.for_organization(configured, tenant) if e.kind == "end"]
        assert ending.by == OPERATOR_SIGNATURE


def test_a_rejected_held_deletion_leaves_its_organizations_active(configured, held, stores):
    held_id, tenants = held
    response = decide("reject", configured, held_id)
    assert response.status_code == 200 and answer(response)["decision"] == "rejected"
    assert {stores.organizations.get(configured, t)["Status"] for t in tenants} == {"active"}


@pytest.mark.parametrize(("first", "then"), [("approve", "reject"), ("reject", "approve"), ("reject", "reject")])
def test_a_held_deletion_is_decided_only_once(configured, held, first, then):
    held_id, _ = held
    decide(first, configured, held_id)
    response = decide(then, configured, held_id)
    assert response.status_code == 409 and is_problem(response)


def test_an_unknown_held_deletion_is_a_404(configured):
    response = decide("approve", configured, "0000000000000-deadbeef")
    assert response.status_code == 404 and is_problem(response)
