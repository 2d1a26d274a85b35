"""Several Partner Center accounts in one deployment: direct and indirect providers, app+user tokens."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from shared.app import App
from shared.settings import Settings
from shared.store import TableNames
from shared.sync.engine import FULL, INCREMENTAL
from shared.sync.stores import SyncStores

pytestmark = pytest.mark.slow  # whole multi-account syncs against the simulator, 4-9 s each

KEY = "bG9jYWwtZGV2ZWxvcG1lbnQta2V5LW5vdC1zZWNyZXQ="


@pytest.fixture
def estate(simulator, storage_connection, table_prefix, monkeypatch):
    """One direct and two indirect providers, each with its own credentials, in one simulator."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_path)
    suffix = uuid.uuid4().hex[:6]
    direct = simulator.add_partner(customers=12, seed=11)
    north = simulator.add_partner(customers=30, seed=12, resellers=3)
    south = simulator.add_partner(customers=20, seed=13, resellers=2)
    env = {
        "SYNC_STORAGE_CONNECTION": storage_connection,
        "PARTNER_CENTER_API_URL": simulator.url,
        "PARTNER_CENTER_AUTHORITY_URL": simulator.url,
        "SYNC_TOKEN_ENCRYPTION_KEY": KEY,
        "DIRECT_SECRET": direct.client_secret,
        "NORTH_SECRET": north.client_secret,
        "NORTH_REFRESH": simulator.issue_refresh_token(north.tenant_id),
        "SOUTH_SECRET": south.client_secret,
        "SOUTH_REFRESH": simulator.issue_refresh_token(south.tenant_id),
    }
    accounts = [
        {"id": f"direct-{suffix}", "kind": "direct_provider", "tenantId": direct.tenant_id,
         "clientId": direct.client_id, "clientSecretSetting": "DIRECT_SECRET"},
        {"id": f"north-{suffix}", "kind": "indirect_provider", "tenantId": north.tenant_id,
         "clientId": north.client_id, "clientSecretSetting": "NORTH_SECRET", "refreshTokenSetting": "NORTH_REFRESH"},
        {"id": f"south-{suffix}", "kind": "indirect_provider", "tenantId": south.tenant_id,
         "clientId": south.client_id, "clientSecretSetting": "SOUTH_SECRET", "refreshTokenSetting": "SOUTH_REFRESH"},
    ]
    env["PARTNER_CENTER_ACCOUNTS"] = json.dumps(accounts)
    stores = SyncStores.open(storage_connection, TableNames().with_prefix(table_prefix))
    yield simulator, env, stores, {"direct": (accounts[0]["id"], direct), "north": (accounts[1]["id"], north),
                                   "south": (accounts[2]["id"], south)}
    stores.tables.delete_all()


def organizations(stores, account_id):
    return {o["RowKey"]: o for o in stores.organizations.list(account_id)}


def test_three_accounts_sync_in_one_run_partitioned_by_account(estate):
    sim, env, stores, accounts = estate
    results = App(Settings.from_env(env), stores=stores).run_accounts(FULL)
    assert [r.outcome for r in results] == ["succeeded"] * 3
    for name, (account_id, partner) in accounts.items():
        orgs = organizations(stores, account_id)
        assert set(orgs) == {c["id"] for c in sim.customers(partner.tenant_id)}, name


def test_indirect_customers_carry_their_indirect_seller(estate):
    sim, env, stores, accounts = estate
    App(Settings.from_env(env), stores=stores).run_accounts(FULL)
    for name in ("north", "south"):
        account_id, partner = accounts[name]
        orgs = organizations(stores, account_id)
        served = sim.account(partner.tenant_id)
        for customer in sim.customers(partner.tenant_id):
            expected = served.customer(customer["id"]).indirect_reseller_id or ""
            assert orgs[customer["id"]]["IndirectResellerId"] == expected
        attributed = {o["IndirectResellerId"] for o in orgs.values()} - {""}
        assert attributed and attributed <= set(partner.reseller_ids)
    direct_id, _ = accounts["direct"]
    assert {o["IndirectResellerId"] for o in organizations(stores, direct_id).values()} == {""}


def test_attribution_costs_one_call_per_seller_not_per_customer(estate):
    sim, env, stores, accounts = estate
    sim.reset_counters()
    App(Settings.from_env(env), stores=stores).run_accounts(FULL, account_id=accounts["north"][0])
    counters = sim.counters()
    assert counters["partner_relationships"] == 1
    assert counters["customer_relationships"] == 0
    assert counters["list_customers"] == 1 + 3  # the walk, and one filtered list per seller


def test_a_new_indirect_customer_is_attributed_by_the_incremental_run(estate):
    sim, env, stores, accounts = estate
    settings = Settings.from_env(env)
    account_id, partner = accounts["north"]
    App(settings, stores=stores).run_accounts(FULL, account_id=account_id)
    seller = partner.reseller_ids[1]
    tenant = sim.accept_relationship(partner_tenant_id=partner.tenant_id, indirect_reseller_id=seller)
    sim.reset_counters()
    [result] = App(settings, stores=stores).run_accounts(INCREMENTAL, account_id=account_id)
    assert result.counts.created == 1
    assert stores.organizations.get(account_id, tenant)["IndirectResellerId"] == seller
    assert sim.counters()["customer_relationships"] == 1
    # Known customers keep their seller when the activity log sends them through the incremental path.
    other = next(c["id"] for c in sim.customers(partner.tenant_id) if c["id"] != tenant)
    before = stores.organizations.get(account_id, other)["IndirectResellerId"]
    sim.update_billing_profile(other, {"email": "changed@example.com"}, partner_tenant_id=partner.tenant_id)
    App(settings, stores=stores).run_accounts(INCREMENTAL, account_id=account_id)
    assert stores.organizations.get(account_id, other)["IndirectResellerId"] == before


def test_an_account_with_bad_credentials_is_reported_while_the_others_sync(estate, caplog):
    sim, env, stores, accounts = estate
    env = dict(env, DIRECT_SECRET="not-the-secret")
    results = {r.account_id: r for r in App(Settings.from_env(env), stores=stores).run_accounts(FULL)}
    direct_id = accounts["direct"][0]
    assert results[direct_id].outcome == "failed" and "refused" in results[direct_id].error
    assert results[accounts["north"][0]].outcome == "succeeded"
    assert stores.runs.latest(direct_id, limit=1)[0].outcome == "failed"
    assert "not-the-secret" not in caplog.text


def test_the_rotated_refresh_token_is_persisted_across_runs(estate):
    sim, env, stores, accounts = estate
    account_id, _ = accounts["north"]
    for _ in range(2):
        # A new App each time is a new process: only the table remembers the rotated token.
        [result] = App(Settings.from_env(env), stores=stores).run_accounts(FULL, account_id=account_id)
        assert result.outcome == "succeeded"
    stored = stores.tables.sync_state.get_entity(account_id, "refresh-token")
    assert env["NORTH_REFRESH"] not in json.dumps(dict(stored), default=str)  # encrypted, and rotated


def test_an_expired_refresh_token_is_reported_clearly(estate):
    sim, env, stores, accounts = estate
    env = dict(env, SOUTH_REFRESH="0.A-expired-or-revoked")
    results = {r.account_id: r for r in App(Settings.from_env(env), stores=stores).run_accounts(FULL)}
    south = results[accounts["south"][0]]
    assert south.outcome == "failed"
    assert "sign in again" in south.error and "AADSTS700082" in south.error
    assert results[accounts["north"][0]].outcome == "succeeded"


def test_an_indirect_provider_without_a_refresh_token_is_a_configuration_error():
    accounts = json.dumps([{"id": "ind", "kind": "indirect_provider", "tenantId": "t", "clientId": "c",
                            "clientSecretSetting": "S"}])
    settings = Settings.from_env({"PARTNER_CENTER_ACCOUNTS": accounts})
    assert settings.accounts == ()
    assert "refreshTokenSetting" in settings.account_errors[0]
