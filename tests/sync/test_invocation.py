"""One invocation, one time budget; leases kept alive by a heartbeat; failures reach the host."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import pytest

from shared.app import App
from devstack.local.host import fire_timer

from shared.host_config import check_time_budget, function_timeout_seconds
from shared.partner_center import LocalRequestBudget
from shared.settings import Settings, SettingsError
from shared.store import TableNames
from shared.store.state import WALK_LEASE
from shared.sync.engine import FULL, INCREMENTAL, Deadline
from shared.operations.accounts import raise_if_failed
from shared.sync.run import InvocationFailed
from shared.sync.stores import SyncStores
from tests.sync.conftest import ACCOUNT


@pytest.fixture
def two_accounts(simulator, storage_connection, table_prefix, monkeypatch):
    """Two direct accounts in one simulator; the second one's secret is wrong."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_path)
    good = simulator.add_partner(customers=30, seed=21)
    bad = simulator.add_partner(customers=5, seed=22)
    suffix = uuid.uuid4().hex[:6]
    accounts = [
        {"id": f"good-{suffix}", "kind": "direct_provider", "tenantId": good.tenant_id, "clientId": good.client_id,
         "clientSecretSetting": "GOOD_SECRET"},
        {"id": f"bad-{suffix}", "kind": "direct_provider", "tenantId": bad.tenant_id, "clientId": bad.client_id,
         "clientSecretSetting": "BAD_SECRET"},
    ]
    env = {"SYNC_STORAGE_CONNECTION": storage_connection, "PARTNER_CENTER_API_URL": simulator.url,
           "PARTNER_CENTER_AUTHORITY_URL": simulator.url, "PARTNER_CENTER_ACCOUNTS": json.dumps(accounts),
           "GOOD_SECRET": good.client_secret, "BAD_SECRET": "not-the-secret", "PARTNER_CENTER_PAGE_SIZE": "10"}
    stores = SyncStores.open(storage_connection, TableNames().with_prefix(table_prefix))
    yield env, stores, accounts[0]["id"], accounts[1]["id"]
    stores.tables.delete_all()


def test_every_account_shares_the_invocations_one_budget(two_accounts):
    env, stores, good, bad = two_accounts
    settings = Settings.from_env({**env, "SYNC_TIME_BUDGET_SECONDS": "60"})
    deadline = Deadline.starting_now(5)  # less than a turn needs: nobody starts
    results = App(settings, stores=stores).run_accounts(FULL, deadline=deadline)
    assert [r.outcome for r in results] == ["skipped", "skipped"]
    assert all("time budget was spent" in r.error for r in results)
    assert stores.runs.latest(good, FULL, limit=1)[0].outcome == "skipped"


def test_a_walk_continued_by_an_incremental_run_stops_at_the_same_deadline(two_accounts, simulator):
    env, stores, good, _ = two_accounts
    settings = Settings.from_env({**env, "SYNC_TIME_BUDGET_SECONDS": "8"})
    simulator.set_latency(0.05)
    started = time.monotonic()
    first = App(settings, stores=stores).run_accounts(FULL, account_id=good)
    incremental = App(settings, stores=stores).run_accounts(INCREMENTAL, account_id=good, deadline=Deadline.starting_now(4))
    # The incremental run and the reconciliation it carried on together kept to the 4 s given.
    assert time.monotonic() - started < 8 + 4 + 3
    assert first[0].outcome in ("succeeded", "checkpointed") and incremental[0].outcome != "failed"


@pytest.mark.slow
def test_a_failed_account_fails_the_timer_invocation_after_every_account_ran(two_accounts, monkeypatch):
    env, stores, good, bad = two_accounts
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(InvocationFailed) as raised:
        fire_timer("full_reconciliation")  # the registered timer function, as the host calls it
    assert bad in str(raised.value) and good not in str(raised.value)
    # The good account synced anyway, in the same invocation, before the failure was raised.
    assert len(list(stores_for_env(env).organizations.list(good))) == 30


def stores_for_env(env):
    
    return App(Settings.from_env(env)).stores


def test_raise_if_failed_passes_runs_with_isolated_customer_failures():
    from shared.sync.run import RunResult

    ok = [RunResult("a", FULL, "r1", "succeeded_with_failures"), RunResult("b", FULL, "r2", "checkpointed")]
    assert raise_if_failed(ok) == ok
    with pytest.raises(InvocationFailed):
        raise_if_failed([*ok, RunResult("c", FULL, "r3", "failed", error="boom")])


def test_a_time_budget_that_does_not_fit_functiontimeout_is_a_clear_settings_error(tmp_path):
    host = tmp_path / "host.json"
    host.write_text(json.dumps({"version": "2.0", "functionTimeout": "00:05:00"}))
    function_timeout_seconds.cache_clear()
    with pytest.raises(SettingsError, match="SYNC_TIME_BUDGET_SECONDS.*functionTimeout.*at most 240"):
        check_time_budget(Settings.from_env({"SYNC_TIME_BUDGET_SECONDS": "480"}), host)
    check_time_budget(Settings.from_env({"SYNC_TIME_BUDGET_SECONDS": "240"}), host)
    host.write_text(json.dumps({"version": "2.0", "functionTimeout": "-1"}))
    function_timeout_seconds.cache_clear()
    check_time_budget(Settings.from_env({"SYNC_TIME_BUDGET_SECONDS": "7200"}), host)
    function_timeout_seconds.cache_clear()


def test_the_shipped_host_json_fits_the_default_budget():
    function_timeout_seconds.cache_clear()
    assert function_timeout_seconds() == 600
    check_time_budget(Settings.from_env({}))
    assert Path(__file__).resolve().parents[2].joinpath("host.json").exists()


@pytest.mark.slow
def test_a_run_longer_than_its_lease_keeps_the_lease_alive(make_sync, stores, pc):
    pc.set_latency(0.15)
    holders = []

    def watch(page: int) -> None:
        holders.append(stores.state.lease_holder(ACCOUNT, WALK_LEASE))

    # 3 pages at ~1.5 s each with a 2 s lease: without the heartbeat the lease would lapse.
    result = make_sync(lease_seconds=2, concurrency=1, after_page=watch).full()
    assert result.outcome == "succeeded"
    assert len({h.lease_id for h in holders}) == 1
    assert stores.state.lease_holder(ACCOUNT, WALK_LEASE) is None  # released at the end


def test_a_run_that_lost_its_lease_stops_before_its_next_write(make_sync, stores, pc):
    make_sync().full()
    pc.update_billing_profile(pc.customers()[15]["id"], {"email": "late@example.com"})
    taken = threading.Event()

    def someone_takes_over(page: int) -> None:
        if page == 1:
            # The lease expires (the instance was frozen) and another run takes it.
            lease = stores.state.lease_holder(ACCOUNT, WALK_LEASE)
            stores.tables.sync_state.update_entity({"PartitionKey": ACCOUNT, "RowKey": WALK_LEASE, "Owner": "other",
                                                    "LeaseId": "other", "ExpiresAt": lease.expires_at})
            taken.set()

    result = make_sync(lease_seconds=3, after_page=someone_takes_over).full()
    assert taken.is_set() and result.outcome == "failed" and "LeaseLost" in result.error
    assert stores.organizations.get(ACCOUNT, pc.customers()[15]["id"])["PrimaryEmail"] != "late@example.com"
    assert stores.state.get_checkpoint(ACCOUNT).data["page"] == 1
    # The new holder's lease is left alone: the run that lost it does not release it.
    assert stores.state.lease_holder(ACCOUNT, WALK_LEASE).owner == "other"


def test_a_walk_whose_request_budget_runs_out_before_its_time_checkpoints_instead_of_failing(make_sync, stores, pc):
    sync = make_sync()
    # 25 calls a minute: the third page's profiles would wait a minute, past the 15 s it was given.
    sync.client.budget = LocalRequestBudget(25)
    first = sync.full(Deadline.starting_now(15))
    assert first.outcome == "checkpointed", first.error
    assert 10 <= len(stores.organizations.statuses(ACCOUNT)) < len(pc.customers())
    assert stores.state.get_checkpoint(ACCOUNT) is not None
    # The next invocation, with room in the budget, goes on from the checkpoint and finishes.
    sync.client.budget = LocalRequestBudget(100_000)
    assert sync.full().outcome == "succeeded"
    assert len(stores.organizations.statuses(ACCOUNT)) == len(pc.customers())


@pytest.mark.slow
def test_a_slow_snapshot_is_not_taken_for_a_slow_page(make_sync, stores, pc, monkeypatch):
    from shared.store.organizations import OrganizationStore

    make_sync().full()
    snapshot = OrganizationStore.snapshot

    def slow_snapshot(self, account_id):
        time.sleep(3)  # a large account's snapshot, once per unit
        return snapshot(self, account_id)

    monkeypatch.setattr(OrganizationStore, "snapshot", slow_snapshot)
    # 12 s: after the 3 s snapshot, pages of a fraction of a second each fit many times over. Counted
    # as part of the first page, the snapshot would leave 9 s < 2 x 3 s + 5 s and stop after one page.
    result = make_sync().full(Deadline.starting_now(12))
    assert result.outcome == "succeeded", (result.outcome, result.error)
