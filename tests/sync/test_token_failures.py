"""A Partner Center token that cannot be had stops the run with one line naming the tenant and the
client id: the run log says it, nothing logs a traceback, no secret is shown."""

from __future__ import annotations

import logging

import pytest

from shared.partner_center import AppTokenProvider, LocalRequestBudget, PartnerCenterClient, RetryPolicy
from shared.sync.engine import AccountSync, SyncOptions
from tests.store.identity.identity_endpoint import BrokenTokenEndpoint
from tests.sync.conftest import ACCOUNT


@pytest.mark.parametrize(("status", "content_type", "body"), [(500, "text/html", b"<html>down</html>"),
                                                              (200, "text/plain", b"not json")])
def test_a_partner_center_token_failure_fails_the_run_in_one_line(pc, stores, caplog, status, content_type, body):
    with BrokenTokenEndpoint(status, content_type, body) as authority:
        tokens = AppTokenProvider(authority.url.rsplit("/msi", 1)[0], pc.partner_tenant_id, pc.client_id,
                                  client_secret=pc.client_secret)
        client = PartnerCenterClient(pc.url, tokens, LocalRequestBudget(1000), policy=RetryPolicy(backoff_initial=0.01,
                                                                                             backoff_max=0.05))
        with caplog.at_level(logging.INFO):
            result = AccountSync(ACCOUNT, client, stores, SyncOptions(page_size=10)).full()
    assert result.outcome == "failed"
    assert result.error.startswith(f"Partner Center tenant {pc.partner_tenant_id}: no access token for client id "
                                   f"{pc.client_id}")
    assert pc.client_secret not in result.error
    assert [r for r in caplog.records if r.exc_info] == []
    assert stores.runs.latest(ACCOUNT, "full", limit=1)[0].error == result.error
