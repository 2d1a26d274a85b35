"""Reconciliation walk seen-set, failure ledger and quarantine, held endings (docs/glossary.md)."""

from __future__ import annotations

import threading

import pytest

from shared.store import FailureLedger, HeldEndingDecided, HeldEndings, ReconciliationWalk
from tests.store.conftest import ACCOUNT, new_tenant


@pytest.fixture
def walk(tables) -> ReconciliationWalk:
    return ReconciliationWalk(tables)


@pytest.fixture
def ledger(tables) -> FailureLedger:
    return FailureLedger(tables, quarantine_after=3)


@pytest.fixture
def held(tables) -> HeldEndings:
    return HeldEndings(tables)


def test_a_walk_seen_set_round_trips(walk):
    pages = [[new_tenant() for _ in range(500)] for _ in range(3)]
    for page_no, page in enumerate(pages):
        walk.record_page(ACCOUNT, "walk1", page_no, page)
    assert walk.seen(ACCOUNT, "walk1") == {tenant for page in pages for tenant in page}


def test_recording_a_page_again_replaces_it(walk):
    walk.record_page(ACCOUNT, "walk1", 0, [new_tenant()])
    again = [new_tenant(), new_tenant()]
    walk.record_page(ACCOUNT, "walk1", 0, again)
    assert walk.seen(ACCOUNT, "walk1") == set(again)


def test_a_page_larger_than_one_property_holds_is_kept_whole(walk):
    page = [new_tenant() for _ in range(2000)]
    walk.record_page(ACCOUNT, "walk1", 0, page)
    assert walk.seen(ACCOUNT, "walk1") == set(page)


def test_walks_are_kept_apart(walk):
    walk.record_page(ACCOUNT, "walk1", 0, [new_tenant()])
    assert walk.seen(ACCOUNT, "walk2") == set()


def test_a_discarded_walk_is_gone(walk):
    for page_no in range(150):
        walk.record_page(ACCOUNT, "walk1", page_no, [new_tenant()])
    assert walk.discard(ACCOUNT, "walk1") == 150
    assert walk.seen(ACCOUNT, "walk1") == set()


def test_a_failure_is_counted_with_its_error_and_run(ledger):
    tenant = new_tenant()
    failure = ledger.record_failure(ACCOUNT, tenant, "403 code 20002", "run1")
    assert (failure.count, failure.last_error, failure.last_run_id, failure.quarantined) == (
        1, "403 code 20002", "run1", False)
    assert ledger.failing(ACCOUNT)[tenant] == failure


def test_a_customer_is_quarantined_at_the_threshold(ledger):
    tenant = new_tenant()
    for run in ("run1", "run2"):
        ledger.record_failure(ACCOUNT, tenant, "bad data", run)
    assert ledger.quarantined(ACCOUNT) == {}
    failure = ledger.record_failure(ACCOUNT, tenant, "bad data", "run3")
    assert failure.count == 3 and failure.quarantined
    assert set(ledger.quarantined(ACCOUNT)) == {tenant}


def test_a_long_error_is_cut_short_in_the_ledger(ledger):
    failure = ledger.record_failure(ACCOUNT, new_tenant(), "e" * 2000, "run1")
    assert len(failure.last_error) == 500


def test_clearing_forgets_failures_and_ignores_unknown_tenants(ledger):
    cleared, kept = new_tenant(), new_tenant()
    ledger.record_failure(ACCOUNT, cleared, "timeout", "run1")
    ledger.record_failure(ACCOUNT, kept, "timeout", "run1")
    ledger.clear(ACCOUNT, [cleared, new_tenant()])
    assert set(ledger.failing(ACCOUNT)) == {kept}


def test_a_held_mass_ending_is_pending_with_its_tenants(held):
    tenants = [new_tenant() for _ in range(2000)]
    held_id = held.hold(ACCOUNT, "run1", tenants, active_count=2500)
    (pending,) = held.pending(ACCOUNT)
    assert (pending.held_id, pending.status, pending.tenant_count, pending.active_count) == (
        held_id, "pending", 2000, 2500)
    assert held.tenant_ids(ACCOUNT, held_id) == tenants


def test_approving_starts_an_approval_that_completes_once_every_ending_is_settled(held):
    tenants = [new_tenant() for _ in range(3)]
    held_id = held.hold(ACCOUNT, "run1", tenants, active_count=4)
    approving = held.approve(ACCOUNT, held_id, by="operator@example")
    assert (approving.status, approving.decided_by) == ("approving", "operator@example")
    assert held.tenant_ids(ACCOUNT, held_id) == tenants and held.pending(ACCOUNT) == []
    assert [h.held_id for h in held.approving(ACCOUNT)] == [held_id]
    done = held.complete_approval(ACCOUNT, held_id, ended=2, kept=1)
    assert (done.status, done.ended_count, done.kept_count) == ("approved", 2, 1)
    assert held.approving(ACCOUNT) == []


def test_approving_again_resumes_or_returns_the_approval_instead_of_refusing(held):
    held_id = held.hold(ACCOUNT, "run1", [new_tenant()], active_count=1)
    held.approve(ACCOUNT, held_id, by="first")
    assert held.approve(ACCOUNT, held_id, by="second").status == "approving"
    held.complete_approval(ACCOUNT, held_id, ended=1, kept=0)
    again = held.approve(ACCOUNT, held_id, by="third")
    assert (again.status, again.decided_by) == ("approved", "first")


def test_a_disappearance_seen_again_updates_its_hold_instead_of_adding_one(held):
    tenants = [new_tenant() for _ in range(900)]
    first = held.hold(ACCOUNT, "run1", tenants, active_count=1000)
    assert held.hold(ACCOUNT, "run2", tenants, active_count=1000) == first
    fewer = tenants[:850]
    assert held.hold(ACCOUNT, "run3", fewer, active_count=990) == first
    (pending,) = held.pending(ACCOUNT)
    assert (pending.sightings, pending.last_run_id, pending.run_id, pending.tenant_count) == (3, "run3", "run1", 850)
    assert held.tenant_ids(ACCOUNT, first) == fewer


def test_a_disappearance_after_a_decision_gets_a_hold_of_its_own(held):
    first = held.hold(ACCOUNT, "run1", [new_tenant()], active_count=1)
    held.reject(ACCOUNT, first)
    second = held.hold(ACCOUNT, "run2", [new_tenant()], active_count=1)
    assert second != first and [h.held_id for h in held.pending(ACCOUNT)] == [second]


def test_a_rejected_hold_is_no_longer_pending(held):
    held_id = held.hold(ACCOUNT, "run1", [new_tenant()], active_count=1)
    held.reject(ACCOUNT, held_id)
    assert held.get(ACCOUNT, held_id).status == "rejected" and held.pending(ACCOUNT) == []


def test_a_hold_is_decided_only_once(held):
    held_id = held.hold(ACCOUNT, "run1", [new_tenant()], active_count=1)
    held.approve(ACCOUNT, held_id)
    with pytest.raises(HeldEndingDecided):
        held.reject(ACCOUNT, held_id)
    assert held.get(ACCOUNT, held_id).status == "approving"


def test_an_unknown_hold_is_none(held):
    assert held.get(ACCOUNT, "0000000000000-abcd") is None


def test_of_an_approval_and_a_rejection_racing_exactly_one_decides(tables, held):
    held_id = held.hold(ACCOUNT, "run1", [new_tenant()], active_count=1)
    barrier = threading.Barrier(2)
    outcomes = []

    def decide(action: str) -> None:
        operator = HeldEndings(tables)
        barrier.wait()
        try:
            getattr(operator, action)(ACCOUNT, held_id)
            outcomes.append(action)
        except HeldEndingDecided:
            outcomes.append("refused")

    threads = [threading.Thread(target=decide, args=(action,)) for action in ("approve", "reject")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes.count("refused") == 1
    (winner,) = [outcome for outcome in outcomes if outcome != "refused"]
    assert held.get(ACCOUNT, held_id).status == {"approve": "approving", "reject": "rejected"}[winner]


def test_decided_holds_are_listed_newest_decision_first_with_who_decided(held):
    from datetime import datetime, timedelta, timezone

    before = datetime.now(timezone.utc) - timedelta(seconds=5)
    first = held.hold(ACCOUNT, "run-1", [new_tenant()], active_count=1)  # one pending hold at a time
    held.reject(ACCOUNT, first, by="ann (1)")
    second = held.hold(ACCOUNT, "run-2", [new_tenant()], active_count=1)
    held.approve(ACCOUNT, second, by="bob (2)")
    waiting = held.hold(ACCOUNT, "run-3", [new_tenant()], active_count=1)
    decided = held.decided_since(ACCOUNT, before)
    assert [(h.held_id, h.status, h.decided_by) for h in decided] == [(second, "approving", "bob (2)"),
                                                                      (first, "rejected", "ann (1)")]
    assert waiting not in {h.held_id for h in decided}
    assert held.decided_since(ACCOUNT, datetime.now(timezone.utc) + timedelta(seconds=5)) == []
