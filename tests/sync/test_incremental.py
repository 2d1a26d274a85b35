"""Incremental sync: the activity log since the watermark, plus customers new to the list."""

from __future__ import annotations

from datetime import timedelta

from shared.store import StoreError
from tests.sync.conftest import ACCOUNT

SILENT_LOG = {"totalCount": 0, "items": [], "links": {}}


def test_first_incremental_run_without_history_reconciles_everything(make_sync, stores):
    result = make_sync().incremental()
    assert result.mode == "full" and result.counts.created == 25
    assert stores.state.get_watermark(ACCOUNT) is not None


def test_an_accepted_relationship_appears_after_one_incremental_run(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.accept_relationship(company_name="Fabrikam Ltd")
    pc.reset_counters()
    result = make_sync().incremental()
    assert result.outcome == "succeeded" and result.counts.created == 1
    assert stores.organizations.get(ACCOUNT, tenant)["CompanyName"] == "Fabrikam Ltd"
    assert pc.counters()["billing_profile"] == 1


def test_a_new_customer_appears_even_when_the_activity_log_is_silent(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.accept_relationship()
    pc.inject("audit_records", "body", body=SILENT_LOG, times=5)
    result = make_sync().incremental()
    assert result.counts.created == 1
    assert stores.organizations.get(ACCOUNT, tenant) is not None


def test_a_billing_profile_change_reaches_primary_and_billing_contacts(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[7]["id"]
    pc.update_billing_profile(tenant, {"lastName": "Nakamura", "defaultAddress": {"city": "大阪市"}})
    pc.reset_counters()
    result = make_sync().incremental()
    assert result.counts.updated == 1 and result.counts.unchanged == 0
    assert pc.counters()["billing_profile"] == 1  # only the customer the activity log names
    org = stores.organizations.get(ACCOUNT, tenant)
    assert org["PrimaryLastName"] == org["BillingLastName"] == "Nakamura"
    assert org["PrimaryCity"] == org["BillingCity"] == "大阪市"


def test_an_ended_relationship_is_marked_by_the_incremental_run(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[0]["id"]
    pc.remove_relationship(tenant)
    result = make_sync().incremental()
    assert result.counts.ended == 1
    assert stores.organizations.get(ACCOUNT, tenant)["Status"] == "relationship_ended"


def test_a_returning_customer_is_active_again(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[0]["id"]
    served = pc.billing_profile(tenant)
    profile = {k: served[k] for k in ("firstName", "lastName", "email", "defaultAddress") if k in served}
    pc.remove_relationship(tenant)
    make_sync().incremental()
    pc.accept_relationship(tenant_id=tenant, billing_profile=profile)
    result = make_sync().incremental()
    assert result.counts.updated == 1
    assert stores.organizations.get(ACCOUNT, tenant)["Status"] == "active"


def test_an_incremental_run_with_no_change_writes_nothing_and_calls_little(make_sync, stores, pc):
    make_sync().full()
    make_sync().incremental()
    pc.reset_counters()
    result = make_sync().incremental()
    assert result.counts.unchanged == 0 and result.entities_written == 0
    counters = pc.counters()
    assert counters["billing_profile"] == 0
    assert counters["list_customers"] == 3 and counters["audit_records"] >= 1


def test_replaying_the_overlap_window_is_harmless(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[4]["id"]
    pc.update_billing_profile(tenant, {"email": "x@example.com"})
    assert make_sync().incremental().counts.updated == 1
    again = make_sync(audit_overlap=timedelta(days=2)).incremental()
    assert again.counts.updated == again.counts.created == 0 and again.entities_written == 0
    assert again.counts.unchanged >= 1  # the replayed change was read again and found stored


def test_the_watermark_does_not_move_past_a_failed_write(make_sync, stores, pc, monkeypatch):
    make_sync().full()
    before = stores.state.get_watermark(ACCOUNT)
    pc.accept_relationship()

    def refuse(*args, **kwargs):
        raise StoreError("Table Storage answered 503 for the batch")

    with monkeypatch.context() as patch:
        patch.setattr(stores.organizations, "apply", refuse)
        failed = make_sync().incremental()
    assert failed.outcome == "failed"
    assert stores.state.get_watermark(ACCOUNT) == before
    assert make_sync().incremental().counts.created == 1
    assert stores.state.get_watermark(ACCOUNT) > before


def test_an_incremental_run_continues_a_pending_reconciliation(make_sync, stores, pc):
    make_sync().full()

    def crash(page: int) -> None:
        if page == 1:
            raise RuntimeError("killed")

    assert make_sync(after_page=crash).full().outcome == "failed"
    assert stores.state.get_checkpoint(ACCOUNT) is not None
    make_sync().incremental()
    assert stores.state.get_checkpoint(ACCOUNT) is None
    assert stores.runs.latest(ACCOUNT, "full", limit=1)[0].outcome == "succeeded"


def test_records_replayed_by_the_overlap_window_are_not_fetched_again(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[4]["id"]
    pc.update_billing_profile(tenant, {"email": "once@example.com"})
    overlap = timedelta(days=2)
    assert make_sync(audit_overlap=overlap).incremental().counts.updated == 1
    pc.reset_counters()
    again = make_sync(audit_overlap=overlap).incremental()
    assert again.outcome == "succeeded"
    assert pc.counters()["billing_profile"] == 0


def test_changes_older_than_the_last_reconciliation_are_not_fetched_again(make_sync, stores, pc):
    tenant = pc.customers()[2]["id"]
    pc.update_billing_profile(tenant, {"email": "before-the-walk@example.com"})
    make_sync().full()
    pc.reset_counters()
    result = make_sync(audit_overlap=timedelta(days=2)).incremental()
    assert result.outcome == "succeeded"
    assert pc.counters()["billing_profile"] == 0
    assert stores.organizations.get(ACCOUNT, tenant)["PrimaryEmail"] == "before-the-walk@example.com"


def test_a_refresh_that_changes_nothing_writes_nothing(make_sync, stores, pc):
    """The incremental run decides from statuses only; the customer it re-reads is compared with its
    stored row, so an activity record without a real change costs no write."""
    make_sync().full()
    tenant = pc.customers()[6]["id"]
    pc.update_billing_profile(tenant, {"email": stores.organizations.get(ACCOUNT, tenant)["PrimaryEmail"]})
    before = stores.organizations.get(ACCOUNT, tenant).metadata["etag"]
    result = make_sync().incremental()
    assert result.outcome == "succeeded"
    assert result.counts.updated == 0 and result.counts.unchanged == 1
    assert stores.organizations.get(ACCOUNT, tenant).metadata["etag"] == before
    assert stores.changes.for_run(ACCOUNT, result.run_id) == []
