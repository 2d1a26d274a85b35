"""The change log lists every stored change and only stored changes, whatever stops a run midway.

An entry is written just before its organization; these tests stop runs between the two (a process
that dies, a write that fails halfway through a page, a racing operator) and check what stands.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from azure.core.exceptions import ServiceResponseError

from shared.store import CREATE, UPDATE, ChangeEntry, OrganizationWrite, organization_state
from shared.store.runs import RunOutcome
from shared.operations import actions as operations
from shared.sync.run import FULL, INCREMENTAL

from tests.sync.conftest import ACCOUNT


def logged(stores, run_id: str) -> dict[str, str]:
    return {entry.tenant_id: entry.kind for entry in stores.changes.for_run(ACCOUNT, run_id)}


def outcome_of(stores, run_id: str) -> str:
    return stores.tables.runs.get_entity(ACCOUNT, run_id)["Outcome"]


def test_entries_of_a_dead_run_whose_writes_never_landed_are_taken_back_by_the_next_run(make_sync, stores, pc):
    make_sync().full()
    stored = [c["id"] for c in pc.customers()]
    newcomer = pc.accept_relationship()
    # A walk that died holding its lease: it had logged three changes when its process stopped.
    dead = stores.runs.start(ACCOUNT, FULL)
    landed_row = stores.organizations.get(ACCOUNT, stored[0])
    stores.changes.record(ACCOUNT, dead.run_id, [
        # landed: the row's LastChangedAt is the entry's timestamp
        ChangeEntry(stored[0], UPDATE, landed_row["LastChangedAt"], {"PrimaryEmail": ("a@x.com", "b@x.com")}),
        # never landed: the row is older than the entry
        ChangeEntry(stored[1], UPDATE, dead.started_at + timedelta(seconds=1), {"PrimaryEmail": ("c@x.com", "d@x.com")}),
        # never landed: no row at all
        ChangeEntry(newcomer, CREATE, dead.started_at + timedelta(seconds=1), {"CompanyName": ("", "New")}),
    ])

    walk = make_sync().full()

    assert outcome_of(stores, dead.run_id) == RunOutcome.ABANDONED
    assert logged(stores, dead.run_id) == {stored[0]: UPDATE}
    # The newcomer's creation is logged once, by the run that stored it.
    assert logged(stores, walk.run_id) == {newcomer: CREATE}


def test_a_big_dead_run_is_settled_with_one_query(make_sync, stores, pc):
    """More entries than point reads are worth: the organizations changed since the run began are
    read at once, and the same rule decides."""
    for _ in range(110):
        pc.accept_relationship()
    first = make_sync(page_size=50).full()
    created = logged(stores, first.run_id)
    assert len(created) == len(pc.customers()) > 100
    # Pretend that walk died after its last entries but before their writes: 5 rows go missing.
    missing = sorted(created)[:5]
    stores.tables.organizations.delete_entity(ACCOUNT, missing[0])
    for tenant in missing[1:]:
        stores.tables.organizations.delete_entity(ACCOUNT, tenant)
    stores.tables.runs.update_entity({"PartitionKey": ACCOUNT, "RowKey": first.run_id, "Outcome": "running"})
    row = stores.tables.runs.get_entity(ACCOUNT, first.run_id)  # and its running mark, as a crash leaves it
    stores.tables.run_index.create_entity({**row, "RowKey": "running~" + first.run_id, "RunId": first.run_id})

    again = make_sync(page_size=50).full()

    assert outcome_of(stores, first.run_id) == RunOutcome.ABANDONED
    assert set(logged(stores, first.run_id)) == set(created) - set(missing)
    assert logged(stores, again.run_id) == {tenant: CREATE for tenant in missing}


def test_a_write_failing_halfway_through_a_page_keeps_only_the_entries_that_landed(make_sync, stores, pc, monkeypatch):
    real_apply = stores.organizations.apply

    def first_half_then_fail(account_id, writes):
        real_apply(account_id, writes[: len(writes) // 2])
        raise ServiceResponseError("the connection dropped mid-page")

    monkeypatch.setattr(stores.organizations, "apply", first_half_then_fail)
    failed = make_sync(page_size=100).full()
    monkeypatch.setattr(stores.organizations, "apply", real_apply)

    assert failed.outcome == RunOutcome.FAILED
    rows = {r["RowKey"] for r in stores.organizations.list(ACCOUNT)}
    assert 0 < len(rows) < len(pc.customers())
    assert set(logged(stores, failed.run_id)) == rows
    # The next walk stores and logs the rest.
    rest = make_sync(page_size=100).full()
    assert set(logged(stores, rest.run_id)) == {c["id"] for c in pc.customers()} - rows


def test_an_operator_exclusion_that_loses_a_race_fails_and_logs_nothing(make_sync, stores, pc, monkeypatch):
    make_sync().full()
    tenant = pc.customers()[3]["id"]
    real_apply = stores.organizations.apply

    def sync_writes_first(account_id, writes):
        row = stores.organizations.get(account_id, tenant)
        real_apply(account_id, [OrganizationWrite(tenant, UPDATE, row["LastChangedAt"] + timedelta(seconds=1),
                                                  {"CompanyName": "Renamed meanwhile"},
                                                  previous=organization_state(row))])
        return real_apply(account_id, writes)

    monkeypatch.setattr(stores.organizations, "apply", sync_writes_first)
    with pytest.raises(operations.ActionConflict, match="changed meanwhile"):
        operations.exclude_organization(stores, ACCOUNT, tenant, by="ops@example.com")
    monkeypatch.setattr(stores.organizations, "apply", real_apply)

    assert stores.organizations.get(ACCOUNT, tenant)["Status"] == "active"
    attempt = stores.runs.latest(ACCOUNT, "exclude", limit=1)[0]
    assert attempt.outcome == RunOutcome.FAILED
    assert logged(stores, attempt.run_id) == {}


def test_an_incremental_run_killed_between_entry_and_write_is_settled_by_the_next_incremental(make_sync, stores, pc):
    make_sync().full()
    make_sync().incremental()
    newcomer = pc.accept_relationship()
    dead = stores.runs.start(ACCOUNT, INCREMENTAL)
    stores.changes.record(ACCOUNT, dead.run_id, [ChangeEntry(newcomer, CREATE, dead.started_at, {})])

    nxt = make_sync().incremental()

    assert logged(stores, dead.run_id) == {}
    assert logged(stores, nxt.run_id) == {newcomer: CREATE}
