"""A walk's last page is stored in parts as its billing profiles come in, so what is left to store
after the walk's last Partner Center call is one transaction's worth (docs/performance.md, the
budget's pace), and the parts keep the walk's order: nothing after a failed write, no checkpoint."""

from __future__ import annotations

import itertools
import threading

import pytest
from azure.core.exceptions import ServiceResponseError

from shared.store.runs import RunOutcome
from tests.sync.conftest import ACCOUNT

CUSTOMERS = 130  # one page, the walk's last, and more than one transaction (100) of writes


@pytest.fixture
def simulator(tmp_path_factory):
    from devstack.simulator import PartnerCenterSimulator

    with PartnerCenterSimulator(customers=CUSTOMERS, seed=11, state_dir=tmp_path_factory.mktemp("sim")) as sim:
        yield sim


def last_fetches_wait_for(event: threading.Event, sync, monkeypatch) -> list[bool]:
    """Make the last 20 profile fetches of the page wait (5 s, then none once one timed out) for
    ``event``; returns whether each found it set."""
    fetches, waits, real_fetch = itertools.count(1), [], sync.client.get_billing_profile

    def fetch(tenant_id):
        if next(fetches) > CUSTOMERS - 20:
            waits.append(event.wait(timeout=5 if all(waits) else 0))
        return real_fetch(tenant_id)

    monkeypatch.setattr(sync.client, "get_billing_profile", fetch)
    return waits


def test_the_last_pages_first_organizations_are_stored_before_its_last_profiles_are_fetched(
        make_sync, stores, monkeypatch):
    sync = make_sync(page_size=500)
    stored = threading.Event()
    real_apply = stores.organizations.apply

    def apply(account_id, writes):
        stats = real_apply(account_id, writes)
        stored.set()
        return stats

    monkeypatch.setattr(stores.organizations, "apply", apply)
    # The page's last 20 fetches start only once some of its organizations are stored: a page
    # stored whole, after all its profiles, would never be.
    waits = last_fetches_wait_for(stored, sync, monkeypatch)
    result = sync.full()

    assert result.outcome == RunOutcome.SUCCEEDED and result.counts.created == CUSTOMERS
    assert len(waits) == 20 and all(waits)
    # A part of 100, the rest but the last 4 (make_sync's concurrency: the fetches in flight at
    # the end), then those 4: one transaction more than the page stored whole.
    assert result.transactions == 3


def test_the_walks_end_reads_the_organizations_while_its_last_page_is_fetched(make_sync, stores, pc, monkeypatch):
    make_sync(page_size=500).full()
    gone = pc.customers()[-1]["id"]
    pc.remove_relationship(gone)
    sync = make_sync(page_size=500)
    read = threading.Event()
    real_read = stores.organizations.each_state

    def each_state(*args, **kwargs):
        read.set()
        return real_read(*args, **kwargs)

    monkeypatch.setattr(stores.organizations, "each_state", each_state)
    waits = last_fetches_wait_for(read, sync, monkeypatch)
    result = sync.full()

    assert result.outcome == RunOutcome.SUCCEEDED and len(waits) == 19 and all(waits)
    assert result.counts.ended == 1 and stores.organizations.get(ACCOUNT, gone)["Status"] == "relationship_ended"


def test_nothing_of_the_last_page_is_stored_after_a_failed_part_and_it_is_not_checkpointed(
        make_sync, stores, monkeypatch):
    calls = []

    def fail_the_first_part(account_id, writes):
        calls.append(len(writes))
        raise ServiceResponseError("the connection dropped")

    monkeypatch.setattr(stores.organizations, "apply", fail_the_first_part)
    result = make_sync(page_size=500).full()

    assert result.outcome == RunOutcome.FAILED and "connection dropped" in result.error
    assert calls == [100]  # the rest of the page waited behind the failed part, and was dropped
    assert stores.state.get_checkpoint(ACCOUNT) is None
    assert list(stores.organizations.list(ACCOUNT)) == []
