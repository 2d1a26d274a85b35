"""GET /api/ops/status and /api/ops/accounts/{id}/status degrade, never hang (issue #22): a table or
queue that cannot be reached is named in ``unavailable``, the rest answers within seconds."""

from __future__ import annotations

import time

import pytest

from shared import app
from devstack.local.host import call_http
from tests.functions.conftest import answer, http_request

FAST = 10


def _timed(name: str, route: str, account: str | None = None):
    started = time.monotonic()
    response = call_http(name, http_request("GET", route, route_params={"accountId": account} if account else None))
    return time.monotonic() - started, response


def test_status_routes_with_queue_storage_down_answer_at_once_naming_the_queues(
        configured, dead_queue_connection, monkeypatch):
    monkeypatch.setenv("AzureWebJobsStorage", dead_queue_connection)
    app.use(None)
    for name, route, account in (("sync_status", "ops/accounts/x/status", configured),
                                 ("sync_status_all", "ops/status", None)):
        elapsed, response = _timed(name, route, account)
        assert response.status_code == 200 and elapsed < FAST, (name, elapsed)
        body = answer(response)
        status = body if account else body["accounts"][0]
        assert status["account"] == configured
        assert {entry["part"] for entry in status["unavailable"]} == \
            {"sync-units-poison queue", "webhook-events-poison queue"}


@pytest.mark.slow
def test_status_routes_with_one_table_unreachable_answer_within_seconds_naming_it(
        configured, hung_table, monkeypatch):
    monkeypatch.setenv("SYNC_STORAGE_CONNECTION", hung_table("CustomerFailures"))
    app.use(None)
    for name, route, account in (("sync_status", "ops/accounts/x/status", configured),
                                 ("sync_status_all", "ops/status", None)):
        elapsed, response = _timed(name, route, account)
        assert response.status_code == 200 and elapsed < FAST, (name, elapsed)
        body = answer(response)
        status = body if account else body["accounts"][0]
        assert [(e["part"], e["fields"]) for e in status["unavailable"]] == \
            [("CustomerFailures table", ["failing", "quarantined"])]
        assert status["failing"] == [] and status["held"] == []
