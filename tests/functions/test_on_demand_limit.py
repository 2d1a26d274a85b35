"""Syncing one customer on demand is limited per account (SYNC_CUSTOMER_LIMIT_PER_MINUTE): beyond
it a 429 problem with Retry-After, before Partner Center is called (docs/http-api.md)."""

from __future__ import annotations

import pytest

from shared import app
from devstack.local.host import call_http
from tests.functions.conftest import answer, http_request, is_problem


def sync_customer(account: str, tenant: str):
    return call_http("sync_customer", http_request("POST", "ops/x/sync",
                                                   route_params={"accountId": account, "customerTenantId": tenant}))


def test_beyond_the_limit_a_customer_sync_is_a_429_and_partner_center_is_not_called(with_partner_center, configured,
                                                                                     monkeypatch):
    monkeypatch.setenv("SYNC_CUSTOMER_LIMIT_PER_MINUTE", "2")
    app.use(None)
    sim = with_partner_center
    tenant = sim.customers()[0]["id"]
    assert [sync_customer(configured, tenant).status_code for _ in range(2)] == [200, 200]
    sim.reset_counters()
    refused = sync_customer(configured, tenant)
    assert refused.status_code == 429 and is_problem(refused)
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "SYNC_CUSTOMER_LIMIT_PER_MINUTE" in answer(refused)["detail"]
    assert not any(sim.counters().values())


def test_the_limit_is_per_account_and_held_across_app_instances(with_partner_center, configured, monkeypatch):
    monkeypatch.setenv("SYNC_CUSTOMER_LIMIT_PER_MINUTE", "1")
    app.use(None)
    tenant = with_partner_center.customers()[1]["id"]
    assert sync_customer(configured, tenant).status_code == 200
    app.use(None)  # a new App: other clients, as another instance would have; the count is in Table Storage
    assert sync_customer(configured, tenant).status_code == 429


@pytest.mark.parametrize("value", ["0", "ten", "1001"])
def test_a_bad_limit_setting_is_a_503_naming_it(configured, monkeypatch, value):
    monkeypatch.setenv("SYNC_CUSTOMER_LIMIT_PER_MINUTE", value)
    app.use(None)
    response = sync_customer(configured, "7b0d3c5e-1b48-4c9a-9a1e-2f8e7d6c5b4a")
    assert response.status_code == 503 and "SYNC_CUSTOMER_LIMIT_PER_MINUTE" in answer(response)["detail"]
