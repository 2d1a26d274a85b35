"""Security: secrets never leave their setting; keys never reach a query unvalidated."""

from __future__ import annotations

import json
import logging

import pytest

from shared.partner_center import AppTokenProvider, AuthenticationError, LocalRequestBudget, PartnerCenterClient
from shared.store import InvalidKey, OrganizationWrite, UPDATE
from shared.keys import utc_now
from shared.sync.engine import AccountSync, SyncOptions
from tests.sync.conftest import ACCOUNT


def everything_stored(stores) -> str:
    dump = []
    for table in (stores.tables.runs, stores.tables.changes, stores.tables.failures, stores.tables.sync_state,
                  stores.tables.organizations, stores.tables.held):
        dump.extend(json.dumps(entity, default=str) for entity in table.list_entities())
    return "\n".join(dump)


def test_secrets_and_tokens_never_reach_logs_or_tables(make_sync, stores, pc, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    issued: list[str] = []
    real_token = AppTokenProvider.token

    def observed(self, **kwargs):
        token = real_token(self, **kwargs)
        issued.append(token)
        return token

    monkeypatch.setattr(AppTokenProvider, "token", observed)
    pc.inject("billing_profile", "status", status=403, tenant_id=pc.customers()[0]["id"], times=1)
    make_sync().full()
    pc.expire_tokens()
    make_sync().incremental()
    wrong = "wrong-" + pc.client_secret
    with pytest.raises(AuthenticationError) as refused:
        AppTokenProvider(pc.url, pc.partner_tenant_id, pc.client_id, client_secret=wrong).token()
    bad_client = PartnerCenterClient(pc.url, AppTokenProvider(pc.url, pc.partner_tenant_id, pc.client_id,
                                                              client_secret=wrong), LocalRequestBudget(100))
    failed = AccountSync(ACCOUNT, bad_client, stores, SyncOptions()).full()
    assert failed.outcome == "failed"
    evidence = "\n".join([caplog.text, everything_stored(stores), str(refused.value), failed.error])
    assert len(set(issued)) >= 2  # a token before and after expiry
    for secret in (pc.client_secret, wrong, *set(issued)):
        assert secret not in evidence


@pytest.mark.parametrize("tenant_id", [
    "00000000-0000-0000-0000-000000000000' or PartitionKey ne '",
    "x' or '1'='1",
    "",
    "00000000-0000-0000-0000-00000000000Z",
])
def test_a_tenant_id_outside_guid_form_never_reaches_a_query(stores, tenant_id):
    with pytest.raises(InvalidKey):
        stores.organizations.get(ACCOUNT, tenant_id)
    with pytest.raises(InvalidKey):
        stores.organizations.apply(ACCOUNT, [OrganizationWrite(tenant_id, UPDATE, utc_now(), {"CompanyName": "x"})])


@pytest.mark.parametrize("account_id", ["a' or 'b'='b", "acct|other", "", "x" * 65])
def test_an_account_id_with_quote_or_separator_is_refused(stores, account_id):
    with pytest.raises(InvalidKey):
        stores.organizations.snapshot(account_id)
    with pytest.raises(InvalidKey):
        stores.runs.latest(account_id)


def test_a_single_account_id_setting_with_a_quote_is_refused_before_any_sync(monkeypatch, storage_connection):
    from shared.settings import Settings

    settings = Settings.from_env({"PARTNER_CENTER_ACCOUNT_ID": "x' or ''='", "PARTNER_CENTER_TENANT_ID": "t",
                                  "PARTNER_CENTER_CLIENT_ID": "c", "PARTNER_CENTER_CLIENT_SECRET": "s",
                                  "SYNC_STORAGE_CONNECTION": storage_connection})
    assert settings.accounts == ()
    assert "PARTNER_CENTER_ACCOUNT_ID" in settings.account_errors[0]
