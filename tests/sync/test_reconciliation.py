"""Full reconciliation against the simulator and Azurite."""

from __future__ import annotations

import threading

import pytest

from shared.store import STATUS_EXCLUDED, EXCLUDE, OrganizationWrite
from shared.keys import utc_now
from shared.store.state import RUN_LEASE, WALK_LEASE
from tests.sync.conftest import ACCOUNT

CONTRACT_PROPERTIES = {
    "PartitionKey", "RowKey", "CompanyName", "Domain", "RelationshipToPartner", "IndirectResellerId", "Status",
    "Source", "MissingContactFields", "FirstSyncedAt", "LastChangedAt", "Version",
    *(f"Primary{f}" for f in ("FirstName", "LastName", "Email", "Phone", "AddressLine1", "AddressLine2",
                               "AddressLine3", "City", "State", "PostalCode", "Country", "Culture", "Language")),
    *(f"Billing{f}" for f in ("FirstName", "LastName", "Email", "Phone", "AddressLine1", "AddressLine2",
                               "AddressLine3", "City", "State", "PostalCode", "Country")),
}


def organizations(stores):
    return {o["RowKey"]: o for o in stores.organizations.list(ACCOUNT)}


def test_first_full_run_creates_every_customer_with_its_billing_contact_as_primary(make_sync, stores, pc):
    result = make_sync().full()
    assert result.outcome == "succeeded"
    orgs = organizations(stores)
    assert set(orgs) == {c["id"] for c in pc.customers()}
    assert result.counts.created == len(orgs) == 25
    for tenant, org in orgs.items():
        profile = pc.billing_profile(tenant)
        address = profile.get("defaultAddress", {})
        assert set(org) == CONTRACT_PROPERTIES
        assert org["Status"] == "active" and org["Source"] == "MicrosoftPartnerCenter"
        first = (profile.get("firstName") or "").strip() or (address.get("firstName") or "").strip()
        assert org["PrimaryFirstName"] == first
        assert org["PrimaryCity"] == (address.get("city") or "").strip()
        for name in ("FirstName", "LastName", "Email", "Phone", "AddressLine1", "City", "PostalCode", "Country"):
            assert org[f"Billing{name}"] == org[f"Primary{name}"]


def test_customers_missing_contact_fields_are_flagged_not_invented(make_sync, stores, pc):
    tenant = pc.accept_relationship(billing_profile={
        "firstName": "Ingrid", "lastName": "Østergaard", "email": "ingrid@example.dk", "culture": "da-DK",
        "language": "da", "defaultAddress": {"country": "DK", "city": "Aarhus", "addressLine1": "Åboulevarden 1"},
    })
    pc.update_billing_profile(tenant, {"defaultAddress": {"phoneNumber": None, "postalCode": None}})
    make_sync().full()
    org = stores.organizations.get(ACCOUNT, tenant)
    assert org["PrimaryPhone"] == "" and org["PrimaryPostalCode"] == ""
    assert org["MissingContactFields"] == "phone,postalCode"
    assert org["PrimaryLastName"] == "Østergaard"


def test_an_unchanged_second_run_writes_nothing(make_sync, stores, pc):
    make_sync().full()
    before = organizations(stores)
    again = make_sync().full()
    assert again.outcome == "succeeded"
    assert again.counts.unchanged == 25 and again.counts.created == again.counts.updated == 0
    assert again.entities_written == 0 and again.transactions == 0
    assert {t: o.metadata["etag"] for t, o in organizations(stores).items()} == \
        {t: o.metadata["etag"] for t, o in before.items()}


def test_full_run_makes_the_minimum_api_calls(make_sync, pc):
    pc.reset_counters()
    make_sync().full()
    counters = pc.counters()
    assert counters["list_customers"] == 3  # 25 customers, pages of 10
    assert counters["billing_profile"] == 25
    assert counters["get_customer"] == 0 and counters["audit_records"] == 0


def test_a_drifted_billing_profile_is_updated_and_logged(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[3]["id"]
    old_email = stores.organizations.get(ACCOUNT, tenant)["PrimaryEmail"]
    pc.update_billing_profile(tenant, {"email": "new.billing@example.com"})
    result = make_sync().full()
    assert result.counts.updated == 1 and result.counts.unchanged == 24
    org = stores.organizations.get(ACCOUNT, tenant)
    assert org["PrimaryEmail"] == org["BillingEmail"] == "new.billing@example.com"
    [entry] = stores.changes.for_run(ACCOUNT, result.run_id)
    assert entry.changes["PrimaryEmail"] == (old_email, "new.billing@example.com")
    assert entry.changes["BillingEmail"] == (old_email, "new.billing@example.com")


def test_a_customer_missing_from_a_complete_walk_is_ended_never_deleted(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[0]["id"]
    pc.remove_relationship(tenant)
    result = make_sync().full()
    assert result.counts.ended == 1
    org = stores.organizations.get(ACCOUNT, tenant)
    assert org["Status"] == "relationship_ended"
    assert org["CompanyName"]  # the row and its content are kept


def test_deletion_guard_holds_a_mass_disappearance(make_sync, stores, pc):
    make_sync(page_size=500).full()
    pc.inject("list_customers", "body", body={"totalCount": 0, "items": [], "links": {}}, times=1)
    result = make_sync(page_size=500, deletion_guard_minimum=5, deletion_guard_percent=10).full()
    assert result.counts.ended == 0 and result.counts.held == 25
    assert all(o["Status"] == "active" for o in organizations(stores).values())
    [held] = stores.held.pending(ACCOUNT)
    assert held.tenant_count == 25 and held.active_count == 25


def test_a_run_killed_between_pages_resumes_and_finishes_exactly_once(make_sync, stores, pc):
    def crash(page: int) -> None:
        if page == 2:
            raise RuntimeError("host recycled")

    first = make_sync(after_page=crash).full()
    assert first.outcome == "failed"
    assert len(organizations(stores)) == 20
    assert stores.state.get_checkpoint(ACCOUNT).data["page"] == 2
    pc.reset_counters()
    second = make_sync().full()
    assert second.outcome == "succeeded"
    assert second.counts.created == 5
    assert pc.counters()["list_customers"] == 1  # only the page after the checkpoint
    assert set(organizations(stores)) == {c["id"] for c in pc.customers()}
    assert stores.state.get_checkpoint(ACCOUNT) is None


def test_a_walk_out_of_time_checkpoints_and_the_next_invocation_ends_missing_ones(make_sync, stores, pc):
    make_sync().full()
    gone = pc.customers()[24]["id"]
    pc.remove_relationship(gone)
    partial = make_sync(time_budget_seconds=1, after_page=lambda page: __import__("time").sleep(0.6)).full()
    assert partial.outcome == "checkpointed"
    assert stores.organizations.get(ACCOUNT, gone)["Status"] == "active"  # not before the walk is complete
    done = make_sync().full()
    assert done.outcome == "succeeded" and done.counts.ended == 1
    assert stores.organizations.get(ACCOUNT, gone)["Status"] == "relationship_ended"


def test_one_failing_customer_does_not_fail_the_run(make_sync, stores, pc):
    tenant = pc.customers()[5]["id"]
    pc.inject("billing_profile", "status", status=404, tenant_id=tenant, times=1)
    result = make_sync().full()
    assert result.outcome == "succeeded_with_failures"
    assert result.counts.failed == 1 and result.counts.created == 24
    assert tenant in stores.failures.failing(ACCOUNT)
    retry = make_sync().full()
    assert retry.outcome == "succeeded" and retry.counts.created == 1
    assert tenant not in stores.failures.failing(ACCOUNT)


def test_repeated_failures_quarantine_a_customer(make_sync, stores, pc):
    tenant = pc.customers()[5]["id"]
    pc.inject("billing_profile", "malformed", tenant_id=tenant, times=10)
    for _ in range(3):
        make_sync().full()
    assert stores.failures.failing(ACCOUNT)[tenant].quarantined


def test_an_excluded_organization_is_never_overwritten(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[2]["id"]
    stores.organizations.apply(ACCOUNT, [OrganizationWrite(tenant, EXCLUDE, utc_now())])
    pc.update_billing_profile(tenant, {"email": "changed@example.com"})
    pc.remove_relationship(pc.customers()[3]["id"])
    result = make_sync().full()
    org = stores.organizations.get(ACCOUNT, tenant)
    assert org["Status"] == STATUS_EXCLUDED and org["PrimaryEmail"] != "changed@example.com"
    assert result.counts.excluded_skipped == 1


def test_overlapping_runs_of_one_account_never_run_at_once(make_sync, stores, pc):
    pc.set_latency(0.05)
    results = []
    runs = [threading.Thread(target=lambda: results.append(make_sync().full())) for _ in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    assert sorted(r.outcome for r in results) == ["skipped", "succeeded"]
    assert len(organizations(stores)) == 25


def test_a_reconciliation_waits_for_the_walk_lease_of_a_run_finishing_its_invocation(make_sync, stores):
    """A queued follow-up unit can start while the unit before it still holds the walk's lease."""
    lease = stores.state.acquire(ACCOUNT, "previous-unit", 60, WALK_LEASE)
    releaser = threading.Timer(1.0, stores.state.release, args=[lease])
    releaser.start()
    result = make_sync(full_lease_wait_seconds=30).full()
    releaser.join()
    assert result.outcome == "succeeded" and result.counts.created == 25


def test_a_reconciliation_runs_beside_an_incremental_run(make_sync, stores):
    """The default schedules fire the nightly run and an incremental run at the same second."""
    stores.state.acquire(ACCOUNT, "incremental-run", 60, RUN_LEASE)
    result = make_sync().full()
    assert result.outcome == "succeeded" and result.counts.created == 25


def test_a_reconciliation_gives_up_waiting_for_the_lease_and_says_so(make_sync, stores):
    stores.state.acquire(ACCOUNT, "long-run", 60, WALK_LEASE)
    result = make_sync(full_lease_wait_seconds=1).full()
    assert result.outcome == "skipped" and "lease" in result.error


def test_a_stale_lease_from_a_crashed_run_expires(make_sync, stores):
    stores.state.acquire(ACCOUNT, "crashed-run", 1, WALK_LEASE)
    assert make_sync().full().outcome == "skipped"
    import time

    time.sleep(1.2)
    assert make_sync().full().outcome == "succeeded"


def test_the_run_log_records_counts_and_api_calls(make_sync, stores):
    result = make_sync().full()
    [record] = stores.runs.latest(ACCOUNT, "full", limit=1)
    assert record.outcome == "succeeded"
    assert record.counts["created"] == 25
    assert record.api_calls == result.api_calls == 3 + 25
    assert record.finished_at >= record.started_at


@pytest.mark.parametrize("status", [503, 500])
def test_a_partner_center_outage_fails_the_run_and_keeps_state(make_sync, stores, pc, status):
    pc.inject("list_customers", "status", status=status, times=4)  # every attempt the client makes
    result = make_sync().full()
    assert result.outcome == "failed" and "TransientError" in result.error
    assert organizations(stores) == {}
    assert make_sync().full().outcome == "succeeded"


def test_on_demand_sync_of_one_customer_makes_one_call_and_returns_the_organization(make_sync, stores, pc):
    tenant = pc.accept_relationship(company_name="Northwind Traders")
    pc.reset_counters()
    result, org = make_sync().customer(tenant)
    assert result.outcome == "succeeded" and result.counts.created == 1
    assert org["CompanyName"] == "Northwind Traders" and org["Status"] == "active"
    assert pc.counters()["get_customer"] == 1 and pc.counters()["billing_profile"] == 0
    again, _ = make_sync().customer(tenant)
    assert again.counts.unchanged == 1 and again.entities_written == 0


def test_on_demand_sync_of_a_departed_customer_ends_it(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[0]["id"]
    pc.remove_relationship(tenant)
    result, org = make_sync().customer(tenant)
    assert result.counts.ended == 1 and org["Status"] == "relationship_ended"


def test_on_demand_sync_runs_while_a_reconciliation_holds_the_lease(make_sync, stores, pc):
    stores.state.acquire(ACCOUNT, "long-reconciliation", 600, WALK_LEASE)
    tenant = pc.accept_relationship()
    result, org = make_sync().customer(tenant)
    assert result.outcome == "succeeded" and org is not None


def test_an_approved_held_ending_ends_the_organizations(make_sync, stores, pc):
    make_sync(page_size=500).full()
    for customer in pc.customers()[:6]:
        pc.remove_relationship(customer["id"])
    make_sync(page_size=500, deletion_guard_minimum=2, deletion_guard_percent=10).full()
    [held] = stores.held.pending(ACCOUNT)
    result = make_sync().approve_held(held.held_id, by="operator@example.com")
    assert result.outcome == "succeeded" and result.counts.ended == 6
    assert sum(o["Status"] == "relationship_ended" for o in organizations(stores).values()) == 6
    assert stores.held.pending(ACCOUNT) == []
