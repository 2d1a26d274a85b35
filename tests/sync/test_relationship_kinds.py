"""A customer whose relationship changes to a kind that does not sync ends its organization, in every
run that sees the change: a full walk, an incremental run, an approved held ending."""

from __future__ import annotations

import pytest

from shared.store import STATUS_ACTIVE, STATUS_RELATIONSHIP_ENDED
from shared.store.organizations import END
from tests.sync.conftest import ACCOUNT

# Every kind a reseller relationship can turn into that the default setting does not sync, and one
# nobody documented yet.
UNSYNCED_KINDS = ["advisor", "syndication", "microsoft_support", "unknown", "some_future_kind"]


def status_of(stores, tenant: str) -> str | None:
    row = stores.organizations.get(ACCOUNT, tenant)
    return row["Status"] if row else None


def ended_in_change_log(stores, run_id: str) -> set[str]:
    return {e.tenant_id for e in stores.changes.for_run(ACCOUNT, run_id) if e.kind == END}


@pytest.mark.parametrize("kind", UNSYNCED_KINDS)
def test_a_reseller_turned_to_a_kind_that_does_not_sync_is_ended_by_the_full_walk(make_sync, stores, pc, kind):
    make_sync().full()
    tenant = pc.customers()[3]["id"]
    pc.set_relationship_kind(tenant, kind)
    result = make_sync().full()
    assert result.outcome == "succeeded" and result.counts.ended == 1
    assert status_of(stores, tenant) == STATUS_RELATIONSHIP_ENDED
    assert ended_in_change_log(stores, result.run_id) == {tenant}
    assert sum(o["Status"] == STATUS_ACTIVE for o in stores.organizations.list(ACCOUNT)) == 24


def test_a_kind_the_setting_lists_stays_active_and_one_it_does_not_list_ends(make_sync, stores, pc):
    kinds = frozenset({"reseller", "advisor"})
    make_sync(relationship_kinds=kinds).full()
    advisor, syndication = pc.customers()[3]["id"], pc.customers()[14]["id"]
    pc.set_relationship_kind(advisor, "advisor")
    pc.set_relationship_kind(syndication, "syndication")
    result = make_sync(relationship_kinds=kinds).full()
    assert result.counts.ended == 1
    assert (status_of(stores, advisor), status_of(stores, syndication)) == (STATUS_ACTIVE, STATUS_RELATIONSHIP_ENDED)


@pytest.mark.parametrize("kind", ["advisor", "some_future_kind"])
def test_a_reseller_turned_to_a_kind_that_does_not_sync_is_ended_by_the_incremental_run(make_sync, stores, pc, kind):
    make_sync().full()
    tenant = pc.customers()[12]["id"]
    pc.set_relationship_kind(tenant, kind)
    result = make_sync().incremental()
    assert result.outcome == "succeeded" and result.counts.ended == 1
    assert status_of(stores, tenant) == STATUS_RELATIONSHIP_ENDED
    assert ended_in_change_log(stores, result.run_id) == {tenant}


def test_an_approved_held_ending_ends_customers_whose_kind_no_longer_syncs(make_sync, stores, pc):
    make_sync().full()
    changed = [c["id"] for c in pc.customers()[:6]]
    for tenant in changed:
        pc.set_relationship_kind(tenant, "advisor")
    walk = make_sync(deletion_guard_minimum=2, deletion_guard_percent=0).full()
    assert walk.counts.held == 6 and all(status_of(stores, t) == STATUS_ACTIVE for t in changed)
    (held,) = stores.held.pending(ACCOUNT)
    pc.set_relationship_kind(changed[0], "reseller")  # back before the operator looked: stays active
    result = make_sync().approve_held(held.held_id, by="ops@example.com")
    assert result.outcome == "succeeded" and result.counts.ended == 5
    assert status_of(stores, changed[0]) == STATUS_ACTIVE
    assert [status_of(stores, t) for t in changed[1:]] == [STATUS_RELATIONSHIP_ENDED] * 5
    assert ended_in_change_log(stores, result.run_id) == set(changed[1:])
    decided = stores.held.get(ACCOUNT, held.held_id)
    assert (decided.status, decided.ended_count, decided.kept_count) == ("approved", 5, 1)
