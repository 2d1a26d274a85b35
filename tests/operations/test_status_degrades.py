"""Status degrades, never hangs (issue #22): a table or queue that cannot be reached is named in
``unavailable`` and the rest of the status is there within seconds; a read creates nothing."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueServiceClient

from shared import app
from shared.cli import main
from shared.operations.units import POISON_QUEUE as UNIT_POISON
from shared.settings import Settings
from shared.store import TableNames
from shared.sync.stores import SyncStores
from shared.webhooks.queue import POISON_QUEUE as EVENT_POISON

FAST = 10  # seconds: a status someone waits for answers within this, whatever storage does


@pytest.fixture
def account(monkeypatch, storage_connection):
    """One configured account on Azurite, with a finished incremental run to show."""
    for name in ("PARTNER_CENTER_ACCOUNTS", "SYNC_DISPATCH"):
        monkeypatch.delenv(name, raising=False)
    account_id = "acct-" + uuid.uuid4().hex[:12]
    for name, value in {"SYNC_STORAGE_CONNECTION": storage_connection, "AzureWebJobsStorage": storage_connection,
                        "PARTNER_CENTER_ACCOUNT_ID": account_id, "PARTNER_CENTER_TENANT_ID": str(uuid.uuid4()),
                        "PARTNER_CENTER_CLIENT_ID": str(uuid.uuid4()),
                        "PARTNER_CENTER_CLIENT_SECRET": "not-used"}.items():
        monkeypatch.setenv(name, value)
    runs = app.current().stores.runs
    record = runs.start(account_id, "incremental")
    runs.finish(record, "succeeded", {}, api_calls=1, throttled_calls=0)
    app.use(None)
    return account_id, record.run_id


def _timed_status(capsys) -> tuple[float, dict, str]:
    """``python -m shared status --json`` and ``status``: the longer of the two times, the JSON, the text."""
    started = time.monotonic()
    assert main(["status", "--json"]) == 0
    as_json = json.loads(capsys.readouterr().out)
    middle = time.monotonic()
    assert main(["status"]) == 0
    elapsed = max(middle - started, time.monotonic() - middle)
    [status] = as_json
    return elapsed, status, capsys.readouterr().out


def test_status_with_queue_storage_down_names_both_poison_queues_and_shows_the_rest(
        account, dead_queue_connection, monkeypatch, capsys):
    account_id, run_id = account
    monkeypatch.setenv("AzureWebJobsStorage", dead_queue_connection)
    app.use(None)
    elapsed, status, text = _timed_status(capsys)
    assert elapsed < FAST, f"status took {elapsed:.1f} s with the queue service down"
    assert status["last_incremental"]["runId"] == run_id
    parts = {entry["part"]: entry for entry in status["unavailable"]}
    assert set(parts) == {f"{UNIT_POISON} queue", f"{EVENT_POISON} queue"}
    assert all(entry["reason"] for entry in parts.values())
    assert parts[f"{UNIT_POISON} queue"]["fields"] == ["parked_units"]
    assert status["parked_units"][0]["problem"].startswith("parked units cannot be read")
    assert f"unavailable: {UNIT_POISON} queue" in text and f"unavailable: {EVENT_POISON} queue" in text


@pytest.mark.slow
def test_status_with_one_table_unreachable_names_it_and_shows_the_rest(account, hung_table, monkeypatch, capsys):
    account_id, run_id = account
    monkeypatch.setenv("SYNC_STORAGE_CONNECTION", hung_table("HeldChanges"))
    app.use(None)
    elapsed, status, text = _timed_status(capsys)
    assert elapsed < FAST, f"status took {elapsed:.1f} s with one table unreachable"
    assert [(entry["part"], entry["fields"]) for entry in status["unavailable"]] == [("HeldChanges table", ["held"])]
    assert "Timeout" in status["unavailable"][0]["reason"] or "timed out" in status["unavailable"][0]["reason"]
    assert status["last_incremental"]["runId"] == run_id and status["held"] == []
    assert status["webhook_events"]["counts"] == {"pending": 0, "failed": 0, "poisoned": 0}
    assert "unavailable: HeldChanges table" in text


def test_a_status_read_creates_no_queue(account, storage_connection):
    account_id, _ = account
    service = QueueServiceClient.from_connection_string(storage_connection)
    for name in (UNIT_POISON, EVENT_POISON):
        try:
            service.delete_queue(name)
        except ResourceNotFoundError:
            pass
    status = app.current().status.account(account_id)
    assert status["parked_units"] == [] and status["webhook_events"]["poisoned"] == []
    assert status["unavailable"] == []
    existing = {queue.name for queue in service.list_queues()}
    assert not existing & {UNIT_POISON, EVENT_POISON}


def test_a_status_read_creates_no_table_and_missing_tables_are_nothing_yet(storage_connection, table_prefix):
    names = TableNames().with_prefix(table_prefix)
    settings = Settings.from_env({"SYNC_STORAGE_CONNECTION": storage_connection,
                                  "AzureWebJobsStorage": storage_connection, "PARTNER_CENTER_ACCOUNT_ID": "acct-x",
                                  "PARTNER_CENTER_TENANT_ID": str(uuid.uuid4()),
                                  "PARTNER_CENTER_CLIENT_ID": str(uuid.uuid4()),
                                  "PARTNER_CENTER_CLIENT_SECRET": "not-used"})
    wired = app.App(settings, stores=SyncStores.open(storage_connection, names, create=False))
    status = wired.status.account("acct-x")
    assert status["unavailable"] == [] and status["last_incremental"] is None and status["held"] == []
    tables = TableServiceClient.from_connection_string(storage_connection)
    assert not [table.name for table in tables.list_tables() if table.name.startswith(table_prefix)]
