"""Correct across invocations: walks that span invocations while other writers work, restarted
walks, outages, and the customer who is gone between list and fetch."""

from __future__ import annotations

from shared.store import STATUS_ACTIVE

from tests.sync.conftest import ACCOUNT

ENDED_BODY = {"code": 20002, "description": "Customer has no relationship with this partner", "source": "PartnerCenter"}


def status_of(stores, tenant: str) -> str | None:
    row = stores.organizations.get(ACCOUNT, tenant)
    return row["Status"] if row else None


def test_an_incremental_run_works_while_the_first_walk_is_unfinished(make_sync, stores, pc):
    first = make_sync(time_budget_seconds=1).full()
    assert first.outcome == "checkpointed" and stores.state.get_watermark(ACCOUNT) is None
    accepted = pc.accept_relationship(position=0)  # behind the walk: only the incremental run sees it
    result = make_sync().incremental()
    assert result.outcome == "succeeded", result.error
    assert status_of(stores, accepted) == STATUS_ACTIVE
    assert stores.state.get_watermark(ACCOUNT) is not None


def test_customers_accepting_behind_a_walk_spanning_invocations_are_never_ended(make_sync, stores, pc):
    make_sync().full()
    walk = make_sync(time_budget_seconds=1).full()
    assert walk.outcome == "checkpointed"
    # Between the walk's invocations: two customers accept on pages the walk has passed, and the
    # 5-minute timer's incremental run creates their organizations.
    accepted = [pc.accept_relationship(position=0), pc.accept_relationship(position=3)]
    incremental = make_sync(time_budget_seconds=1).incremental()
    assert incremental.counts.created == 2
    while make_sync(time_budget_seconds=1).full().outcome == "checkpointed":
        pass
    assert [status_of(stores, t) for t in accepted] == [STATUS_ACTIVE, STATUS_ACTIVE]
    assert stores.held.pending(ACCOUNT) == []


def test_organizations_created_by_webhook_or_on_demand_syncs_mid_walk_are_never_ended(make_sync, stores, pc):
    make_sync().full()
    created = []

    def webhook_meanwhile(page: int) -> None:
        if page == 1:
            tenant = pc.accept_relationship(position=0)  # a page the walk has read
            result, row = make_sync().customer(tenant)  # what the webhook receiver does
            assert result.outcome == "succeeded" and row["Status"] == STATUS_ACTIVE
            created.append(tenant)

    walk = make_sync(after_page=webhook_meanwhile).full()
    assert walk.outcome == "succeeded" and walk.counts.ended == 0
    assert status_of(stores, created[0]) == STATUS_ACTIVE


def test_a_customer_who_leaves_and_comes_back_mid_walk_stays_active(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[20]["id"]  # on page 3, ahead of the walk

    def leaves_and_returns(page: int) -> None:
        if page == 1:
            pc.remove_relationship(tenant)
            assert make_sync().customer(tenant)[1]["Status"] == "relationship_ended"
            pc.restore_relationship(tenant, position=0)  # back, but behind the walk now
            assert make_sync().customer(tenant)[1]["Status"] == STATUS_ACTIVE

    walk = make_sync(after_page=leaves_and_returns).full()
    assert walk.outcome == "succeeded" and walk.counts.ended == 0
    assert status_of(stores, tenant) == STATUS_ACTIVE


def test_a_customer_missing_from_a_walk_that_began_after_its_last_write_is_ended(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[20]["id"]
    pc.remove_relationship(tenant)
    walk = make_sync().full()
    assert walk.counts.ended == 1 and status_of(stores, tenant) == "relationship_ended"


def test_a_listed_customer_answering_20002_is_ended_not_failed(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[12]["id"]
    pc.update_billing_profile(tenant, {"email": "moved@example.com"})  # the walk wants its profile
    pc.inject("billing_profile", "status", status=403, body=ENDED_BODY, tenant_id=tenant, times=1)
    pc.inject("get_customer", "status", status=403, body=ENDED_BODY, tenant_id=tenant, times=1)
    result = make_sync().full()
    assert result.outcome == "succeeded" and result.counts.failed == 0 and result.counts.ended == 1
    assert status_of(stores, tenant) == "relationship_ended"
    assert stores.failures.failing(ACCOUNT) == {}


def test_a_customer_the_walk_missed_but_partner_center_still_serves_is_not_ended(make_sync, stores, pc):
    make_sync().full()
    tenant = pc.customers()[20]["id"]  # on page 3, ahead of the walk

    def leaves_and_returns_unseen(page: int) -> None:
        if page == 1:
            pc.remove_relationship(tenant)
            pc.restore_relationship(tenant, position=0)  # back behind the walk; no sync wrote it

    pc.reset_counters()
    walk = make_sync(after_page=leaves_and_returns_unseen).full()
    assert walk.outcome == "succeeded" and walk.counts.ended == 0
    assert status_of(stores, tenant) == STATUS_ACTIVE
    assert pc.counters()["get_customer"] == 1  # the one ending candidate, confirmed alive


def test_a_refused_continuation_token_restarts_the_walk_and_the_run_log_says_so(make_sync, stores, pc):
    make_sync().full()
    assert make_sync(time_budget_seconds=1).full().outcome == "checkpointed"
    pc.expire_continuation_tokens()
    resumed = make_sync().full()
    assert resumed.outcome == "succeeded" and resumed.counts.ended == 0
    assert any("restarted from page 1" in note for note in resumed.notes)
    (logged,) = stores.runs.latest(ACCOUNT, "full", limit=1)
    assert "restarted from page 1" in logged.notes
    assert stores.state.get_checkpoint(ACCOUNT) is None


def test_an_outage_stops_the_run_and_counts_against_no_customer(make_sync, stores, pc):
    make_sync().full()

    def outage_after_first_page(page: int) -> None:
        if page == 1:
            pc.inject("billing_profile", "status", status=503, times=1000)

    result = make_sync(after_page=outage_after_first_page).full()
    assert result.outcome == "failed" and "Partner Center failed the run" in result.error
    assert result.counts.failed == 0 and stores.failures.failing(ACCOUNT) == {}
    checkpoint = stores.state.get_checkpoint(ACCOUNT)
    assert checkpoint is not None and checkpoint.data["page"] < 3  # the walk stopped before its end
    pc.clear_faults()
    assert make_sync().full().outcome == "succeeded"
    assert stores.failures.failing(ACCOUNT) == {}


def test_an_empty_list_never_ends_a_small_account(make_sync, stores, pc):
    make_sync(page_size=500).full()
    pc.inject("list_customers", "body", body={"totalCount": 0, "items": [], "links": {}}, times=1)
    # 25 organizations, well under the guard's minimum of 50: an empty list is still no evidence.
    result = make_sync(page_size=500, deletion_guard_minimum=50).full()
    assert result.counts.ended == 0 and result.counts.held == 25
    assert {o["Status"] for o in stores.organizations.list(ACCOUNT)} == {STATUS_ACTIVE}


def test_the_same_disappearance_seen_by_many_runs_is_one_hold(make_sync, stores, pc):
    make_sync().full()
    for customer in pc.customers()[:6]:
        pc.remove_relationship(customer["id"])
    for _ in range(3):
        assert make_sync(deletion_guard_minimum=2, deletion_guard_percent=0).full().counts.held == 6
    (held,) = stores.held.pending(ACCOUNT)
    assert held.sightings == 3 and held.tenant_count == 6


def test_approval_confirms_each_ending_with_partner_center_and_survives_a_failure_midway(make_sync, stores, pc):
    make_sync().full()
    leaving = [c["id"] for c in pc.customers()[:6]]
    for tenant in leaving:
        pc.remove_relationship(tenant)
    make_sync(deletion_guard_minimum=2, deletion_guard_percent=0).full()
    (held,) = stores.held.pending(ACCOUNT)
    pc.restore_relationship(leaving[0])  # back before the operator looked: must stay active
    pc.inject("get_customer", "status", status=503, times=1000)
    failed = make_sync().approve_held(held.held_id, by="ops@example.com")
    assert failed.outcome == "failed" and stores.held.get(ACCOUNT, held.held_id).status == "approving"
    assert all(status_of(stores, t) == STATUS_ACTIVE for t in leaving)
    pc.clear_faults()
    done = make_sync().approve_held(held.held_id, by="someone-else@example.com")
    assert done.outcome == "succeeded" and done.counts.ended == 5
    decided = stores.held.get(ACCOUNT, held.held_id)
    assert (decided.status, decided.decided_by, decided.ended_count, decided.kept_count) == (
        "approved", "ops@example.com", 5, 1)
    assert status_of(stores, leaving[0]) == STATUS_ACTIVE
    assert [status_of(stores, t) for t in leaving[1:]] == ["relationship_ended"] * 5
    again = make_sync().approve_held(held.held_id)
    assert again.outcome == "succeeded" and again.counts.ended == 0


def test_an_approval_left_midway_is_finished_by_the_next_incremental_run(make_sync, stores, pc):
    make_sync().full()
    leaving = [c["id"] for c in pc.customers()[:4]]
    for tenant in leaving:
        pc.remove_relationship(tenant)
    make_sync(deletion_guard_minimum=2, deletion_guard_percent=0).full()
    (held,) = stores.held.pending(ACCOUNT)
    pc.inject("get_customer", "status", status=503, times=1000)
    make_sync().approve_held(held.held_id, by="ops@example.com")
    pc.clear_faults()
    make_sync(deletion_guard_minimum=2, deletion_guard_percent=0).incremental()
    assert stores.held.get(ACCOUNT, held.held_id).status == "approved"
    assert [status_of(stores, t) for t in leaving] == ["relationship_ended"] * 4
