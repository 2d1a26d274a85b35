from __future__ import annotations

from datetime import timedelta

import pytest

from shared.partner_center import AppTokenProvider, LocalRequestBudget, PartnerCenterClient, RetryPolicy
from shared.store import TableNames
from shared.sync.engine import AccountSync, SyncOptions
from shared.sync.stores import SyncStores

ACCOUNT = "contoso-csp"


@pytest.fixture
def stores(storage_connection, table_prefix):
    opened = SyncStores.open(storage_connection, TableNames().with_prefix(table_prefix), quarantine_after=3)
    yield opened
    opened.tables.delete_all()
    opened.tables.close()


@pytest.fixture
def pc(simulator, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_path)
    return simulator


@pytest.fixture
def make_sync(pc, stores):
    """An AccountSync for the simulator's partner, with small pages so walks span several."""

    def make(**overrides) -> AccountSync:
        after_page = overrides.pop("after_page", None)
        # No overlap window by default, so call counts do not depend on the seeded history's dates.
        # Nor any wait for a busy lease: a test that wants it says so.
        options = SyncOptions(**{"page_size": 10, "concurrency": 4, "audit_overlap": timedelta(0),
                                 "full_lease_wait_seconds": 0,
                                 "clock_skew": timedelta(0), **overrides})
        tokens = AppTokenProvider(pc.url, pc.partner_tenant_id, pc.client_id, client_secret=pc.client_secret)
        client = PartnerCenterClient(pc.url, tokens, LocalRequestBudget(100_000),
                                     policy=RetryPolicy(backoff_initial=0.01, backoff_max=0.05))
        return AccountSync(ACCOUNT, client, stores, options, after_page=after_page)

    return make
