"""Retention (issue #22): history and the change log past their retention are pruned, in steps that
stop at the deadline and resume; what status and pending work need is never touched."""

from __future__ import annotations

import json
import time
import uuid
from datetime import timedelta

import pytest

from shared import app
from shared.app import App
from shared.cli import main
from shared.keys import newest_first_id, utc_now
from shared.operations.retention import PRUNED_TABLES, prune_history
from shared.operations.units import UnitQueue
from shared.settings import Settings, SettingsError
from shared.store import ChangeEntry, FailureLedger, HeldEndings, RunLog, TableNames
from shared.store.tables import submit_batches
from shared.sync.engine import Deadline
from shared.sync.stores import SyncStores
from shared.webhooks.events import RESELLER_RELATIONSHIP_ACCEPTED, TEST_CREATED, PartnerCenterEvent
from shared.webhooks.store import MAX_ATTEMPTS, WebhookEventStore

ACCOUNT = "retained"
NOW = utc_now()
YEAR_AGO = NOW - timedelta(days=365)
RECENT = NOW - timedelta(days=10)


@pytest.fixture
def stores(storage_connection, table_prefix):
    opened = SyncStores.open(storage_connection, TableNames().with_prefix(table_prefix))
    yield opened
    opened.tables.delete_all()
    opened.tables.close()


@pytest.fixture
def events(storage_connection, table_prefix):
    store = WebhookEventStore.open(storage_connection, table_prefix + "WebhookEvents")
    yield store
    store.delete_table()


def prune(stores, events, deadline=None, **days):
    return prune_history(stores=stores, events=events, account_ids=[ACCOUNT],
                         history_days=days.get("history_days", 90), change_log_days=days.get("change_log_days", 400),
                         deadline=deadline or Deadline.starting_now(60), now=NOW)


def tenant() -> str:
    return str(uuid.uuid4())


def run(stores, at, mode="incremental", outcome="succeeded") -> str:
    log = RunLog(stores.tables, clock=lambda: at)
    record = log.start(ACCOUNT, mode)
    if outcome != "running":
        log.finish(record, outcome, {}, api_calls=0, throttled_calls=0)
    return record.run_id


def event(events, at, *, name=RESELLER_RELATIONSHIP_ACCEPTED, status="processed") -> str:
    customer = tenant()
    stored, _ = events.accept(ACCOUNT, PartnerCenterEvent(
        name, f"https://api.partnercenter.microsoft.com/v1/customers/{customer}", customer, "",
        at.isoformat(), customer), b"{}", now=at)
    if status == "processed":
        events.mark_processed(stored, "run1")
    for _ in range(MAX_ATTEMPTS if status == "failed" else 0):
        events.mark_attempt_failed(events.get(ACCOUNT, stored.key), "boom")
    assert events.get(ACCOUNT, stored.key).status == ("ignored" if name == TEST_CREATED else status)
    return stored.key


def failure(stores, at) -> str:
    customer = tenant()
    FailureLedger(stores.tables, clock=lambda: at).record_failure(ACCOUNT, customer, "403", "run1")
    return customer


def decided_hold(stores, at, decision) -> str:
    held = HeldEndings(stores.tables, clock=lambda: at)
    held_id = held.hold(ACCOUNT, "run1", [tenant() for _ in range(3)], active_count=10)
    if decision == "approved":
        held.approve(ACCOUNT, held_id)
        held.complete_approval(ACCOUNT, held_id, ended=3, kept=0)
    elif decision == "rejected":
        held.reject(ACCOUNT, held_id)
    elif decision == "approving":
        held.approve(ACCOUNT, held_id)
    return held_id


def walk(stores, at) -> str:
    walk_id = newest_first_id(at)
    stores.walk.record_page(ACCOUNT, walk_id, 1, [tenant()])
    return walk_id


def change(stores, at) -> tuple[str, str]:
    run_id, customer = newest_first_id(at), tenant()
    stores.changes.record(ACCOUNT, run_id, [ChangeEntry(customer, "update", at, {"CompanyName": ("a", "b")})])
    return run_id, customer


def run_ids(stores) -> set[str]:
    return {r.run_id for r in stores.runs.latest(ACCOUNT, limit=1000)}


def test_a_year_old_row_of_every_history_table_is_pruned_and_a_recent_one_kept(stores, events):
    old_runs = [run(stores, YEAR_AGO - timedelta(hours=1)), run(stores, YEAR_AGO, mode="full")]
    recent_runs = [run(stores, RECENT), run(stores, RECENT, mode="full")]  # the newest of each mode
    old_events = [event(events, YEAR_AGO), event(events, YEAR_AGO, name=TEST_CREATED, status="ignored")]
    recent_event = event(events, RECENT)
    old_failure, recent_failure = failure(stores, YEAR_AGO), failure(stores, RECENT)
    old_holds = [decided_hold(stores, YEAR_AGO, "approved"), decided_hold(stores, YEAR_AGO, "rejected")]
    recent_hold = decided_hold(stores, RECENT, "rejected")
    old_walk, recent_walk = walk(stores, YEAR_AGO), walk(stores, RECENT)
    old_change, kept_change = change(stores, NOW - timedelta(days=500)), change(stores, NOW - timedelta(days=200))

    report = prune(stores, events)

    assert report.finished
    assert report.totals() == {"SyncRuns": 2, "WebhookEvents": 2, "CustomerFailures": 1,
                               "HeldChanges": 2 * 2, "ReconciliationWalk": 1,
                               "OrganizationChanges": 2}  # the run's entry and the organization's copy
    assert run_ids(stores) == set(recent_runs) and not set(old_runs) & run_ids(stores)
    assert [events.get(ACCOUNT, key) for key in old_events] == [None, None] and events.get(ACCOUNT, recent_event)
    assert set(stores.failures.failing(ACCOUNT)) == {recent_failure} != {old_failure}
    assert [stores.held.get(ACCOUNT, held_id) for held_id in old_holds] == [None, None]
    assert stores.held.tenant_ids(ACCOUNT, old_holds[0]) == []
    assert stores.held.get(ACCOUNT, recent_hold) and len(stores.held.tenant_ids(ACCOUNT, recent_hold)) == 3
    assert stores.walk.seen(ACCOUNT, old_walk) == set() and stores.walk.seen(ACCOUNT, recent_walk)
    assert stores.changes.for_run(ACCOUNT, old_change[0]) == []
    assert [e.tenant_id for e in stores.changes.for_run(ACCOUNT, kept_change[0])] == [kept_change[1]]
    assert prune(stores, events).totals() == dict.fromkeys(PRUNED_TABLES, 0)  # nothing left to do


def test_what_status_and_pending_work_need_survives_however_old(stores, events):
    newest_completed = run(stores, YEAR_AGO - timedelta(days=1), mode="full")
    newest_full = run(stores, YEAR_AGO, mode="full", outcome="failed")
    running = run(stores, YEAR_AGO - timedelta(days=2), mode="incremental", outcome="running")
    older = run(stores, YEAR_AGO - timedelta(days=3), mode="full")
    pending, failed = event(events, YEAR_AGO, status="pending"), event(events, YEAR_AGO, status="failed")
    approving = decided_hold(stores, YEAR_AGO, "approving")
    pending_hold = decided_hold(stores, YEAR_AGO, "pending")
    checkpointed = walk(stores, YEAR_AGO)
    stores.state.save_checkpoint(ACCOUNT, {"walkId": checkpointed, "page": 1})
    organization = {"PartitionKey": ACCOUNT, "RowKey": tenant(), "Status": "active", "FirstSyncedAt": YEAR_AGO}
    stores.tables.organizations.create_entity(organization)

    report = prune(stores, events, history_days=30, change_log_days=30)

    assert report.finished and report.totals()["SyncRuns"] == 1
    assert run_ids(stores) == {newest_completed, newest_full, running} and older not in run_ids(stores)
    assert events.get(ACCOUNT, pending).status == "pending" and events.get(ACCOUNT, failed).status == "failed"
    assert stores.held.get(ACCOUNT, approving).status == "approving"
    assert stores.held.get(ACCOUNT, pending_hold).status == "pending"
    assert len(stores.held.tenant_ids(ACCOUNT, pending_hold)) == 3
    assert stores.walk.seen(ACCOUNT, checkpointed)
    assert stores.tables.organizations.get_entity(ACCOUNT, organization["RowKey"])["Status"] == "active"


class Ticking:
    """A deadline with time for ``checks`` questions, then none."""

    def __init__(self, checks: int) -> None:
        self.checks = checks

    def left(self) -> float:
        self.checks -= 1
        return 60.0 if self.checks >= 0 else 0.0


def test_a_prune_that_runs_out_of_time_stops_and_the_next_one_continues(stores, events):
    seeded = 250
    rows = [("create", {"PartitionKey": ACCOUNT, "RowKey": newest_first_id(YEAR_AGO - timedelta(minutes=n)),
                        "Mode": "incremental", "Outcome": "succeeded", "StartedAt": YEAR_AGO - timedelta(minutes=n)})
            for n in range(seeded)]
    submit_batches(stores.tables.runs, ACCOUNT, rows)
    newest = run(stores, RECENT)

    first = prune(stores, events, deadline=Ticking(checks=3))

    assert not first.finished
    assert 0 < first.totals()["SyncRuns"] < seeded
    second = prune(stores, events)
    assert second.finished
    assert first.totals()["SyncRuns"] + second.totals()["SyncRuns"] == seeded
    assert run_ids(stores) == {newest}


def test_a_prune_without_time_left_deletes_nothing(stores, events):
    old = run(stores, YEAR_AGO - timedelta(days=1))
    run(stores, YEAR_AGO)

    report = prune(stores, events, deadline=Deadline(time.monotonic()))

    assert not report.finished and report.totals() == dict.fromkeys(PRUNED_TABLES, 0)
    assert old in run_ids(stores)


@pytest.fixture
def installed(monkeypatch, storage_connection, stores, events):
    for name in ("PARTNER_CENTER_ACCOUNTS", "SYNC_DISPATCH"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings.from_env({"SYNC_STORAGE_CONNECTION": storage_connection,
                                  "AzureWebJobsStorage": storage_connection,
                                  "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT, "PARTNER_CENTER_TENANT_ID": tenant(),
                                  "PARTNER_CENTER_CLIENT_ID": tenant(), "PARTNER_CENTER_CLIENT_SECRET": "unused",
                                  "SYNC_HISTORY_RETENTION_DAYS": "30"})
    app.use(App(settings, stores=stores, events=events))
    yield
    app.use(None)


def test_the_prune_command_prints_what_it_deleted(installed, stores, events, capsys):
    run(stores, YEAR_AGO - timedelta(days=1))
    run(stores, YEAR_AGO)
    event(events, YEAR_AGO)

    assert main(["prune", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)

    assert printed["deleted"] == {**dict.fromkeys(PRUNED_TABLES, 0), "SyncRuns": 1, "WebhookEvents": 1}
    assert printed["accounts"][ACCOUNT]["SyncRuns"] == 1 and printed["finished"] is True
    assert main(["prune", "--account", ACCOUNT]) == 0
    assert capsys.readouterr().out.startswith(f"{ACCOUNT}: deleted SyncRuns 0, WebhookEvents 0")


def test_pruning_an_account_that_is_not_configured_is_refused(installed, capsys):
    assert main(["prune", "--account", "nobody"]) == 2
    assert "'nobody'" in capsys.readouterr().err


def test_parked_messages_expire_with_the_history(installed, storage_connection):
    parked_seconds = app.current().unit_queue.parked_seconds
    assert parked_seconds == 30 * 86400 == app.current().event_queue.parked_seconds
    queue = UnitQueue(storage_connection, "parked-" + uuid.uuid4().hex[:12], parked_seconds=parked_seconds)
    try:
        queue.park(b'{"account": "x"}')
        [message] = queue.peek_poison()
        assert message.expires_on - message.inserted_on == timedelta(days=30)
    finally:
        queue.poison.delete_queue()


@pytest.mark.parametrize("environ, message", [
    ({"SYNC_HISTORY_RETENTION_DAYS": "ninety"}, "SYNC_HISTORY_RETENTION_DAYS must be a whole number"),
    ({"SYNC_CHANGE_LOG_RETENTION_DAYS": "0"}, "SYNC_CHANGE_LOG_RETENTION_DAYS must be at least 1"),
    ({"SYNC_HISTORY_RETENTION_DAYS": "7"}, "SYNC_HISTORY_RETENTION_DAYS must be more than WEBHOOK_MAX_EVENT_AGE_DAYS"),
])
def test_a_bad_retention_setting_is_an_error_naming_it(environ, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_the_retentions_default_to_90_and_400_days():
    settings = Settings.from_env({})
    assert (settings.history_retention_days, settings.change_log_retention_days) == (90, 400)
