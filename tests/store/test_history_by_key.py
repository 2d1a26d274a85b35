"""The hot paths read by key, whatever the history (docs/storage.md): the entities the service
returns for them stay the same with hundreds of rows of history as with none."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from azure.data.tables import TableServiceClient

from shared.store import HeldEndings, RunLog
from shared.webhooks.events import RESELLER_RELATIONSHIP_ACCEPTED, PartnerCenterEvent
from shared.webhooks.store import FAILED, MAX_ATTEMPTS, PENDING, WebhookEventStore
from tests.store.conftest import ACCOUNT, T0, new_tenant

HISTORY = 150


def finished_runs(tables, count: int, start=T0) -> list[str]:
    ids = []
    for index in range(count):
        at = start + timedelta(minutes=5 * index)
        log = RunLog(tables, clock=lambda at=at: at)
        record = log.start(ACCOUNT, "incremental" if index % 3 else "full")
        log.finish(record, "succeeded" if index % 4 else "failed", {}, api_calls=1, throttled_calls=0)
        ids.append(record.run_id)
    return ids


def reads(request_log, call) -> tuple[object, int]:
    """What ``call`` answers and how many entities it read, having checked it read by key only."""
    request_log.clear()
    answer = call()
    assert request_log.filtered_columns() <= {"PartitionKey", "RowKey"}, "a hot path filtered a non-key column"
    return answer, request_log.returned_entities()


def test_run_starts_and_status_read_the_same_entities_with_history_as_without(tables, request_log):
    runs = RunLog(tables)
    empty = [reads(request_log, lambda: runs.running(ACCOUNT))[1],
             reads(request_log, lambda: runs.abandoned(ACCOUNT))[1]]
    finished_runs(tables, HISTORY)
    later = T0 + timedelta(days=2)
    live = RunLog(tables, clock=lambda: later).start(ACCOUNT, "incremental")
    dead = RunLog(tables, clock=lambda: later + timedelta(minutes=1)).start(ACCOUNT, "full")
    runs.abandon(dead, "its process stopped")

    running, read = reads(request_log, lambda: runs.running(ACCOUNT))
    assert [r.run_id for r in running] == [live.run_id] and read == empty[0] + 1
    abandoned, read = reads(request_log, lambda: runs.abandoned(ACCOUNT))
    assert [(r.run_id, r.outcome, r.mode) for r in abandoned] == [(dead.run_id, "abandoned", "full")]
    assert read == empty[1] + 1
    newest, read = reads(request_log, lambda: runs.newest(ACCOUNT, "full"))
    assert newest.run_id == dead.run_id and read == 2  # the pointer and the run
    completed, read = reads(request_log, lambda: runs.last_completed(ACCOUNT, "incremental"))
    assert completed.outcome in ("succeeded", "succeeded_with_failures") and read == 2
    newest_runs, read = reads(request_log, lambda: runs.latest(ACCOUNT, limit=3))
    assert [r.run_id for r in newest_runs][:2] == [dead.run_id, live.run_id] and read == 3


def test_the_newest_run_of_a_mode_is_the_latest_started_whatever_order_runs_are_written(tables):
    newer, older = T0 + timedelta(hours=1), T0
    first = RunLog(tables, clock=lambda: newer).start(ACCOUNT, "full")
    second = RunLog(tables, clock=lambda: older).start(ACCOUNT, "full")  # a slow instance's start lands later
    RunLog(tables, clock=lambda: newer).finish(second, "succeeded", {}, 0, 0)
    RunLog(tables, clock=lambda: newer).finish(first, "succeeded", {}, 0, 0)
    assert RunLog(tables).newest(ACCOUNT, "full").run_id == first.run_id
    assert RunLog(tables).last_completed(ACCOUNT, "full").run_id == first.run_id


def test_a_run_log_kept_before_the_pointers_is_scanned_once(tables, request_log):
    ids = finished_runs(tables, 13)  # full runs: 0, 3, 6, 9, 12; of those 0 and 12 failed
    tables.runs.delete_entity(ACCOUNT, "~completed~full")
    tables.runs.delete_entity(ACCOUNT, "~latest~full")
    runs = RunLog(tables)
    assert runs.last_completed(ACCOUNT, "full").run_id == ids[9]
    assert runs.newest(ACCOUNT, "full").run_id == ids[12]
    assert runs.last_completed(ACCOUNT, "full").run_id == ids[9]
    found, read = reads(request_log, lambda: runs.last_completed(ACCOUNT, "full"))
    assert found.run_id == ids[9] and read == 2
    assert runs.newest(ACCOUNT, "parked") is None and reads(request_log, lambda: runs.newest(ACCOUNT, "parked"))[1] == 1


def rows(table) -> set[str]:
    return {e["RowKey"] for e in table.query_entities("PartitionKey eq @pk", parameters={"pk": ACCOUNT})}


def test_a_run_is_listed_as_running_from_before_its_row_is_written_until_after_it_finishes(tables):
    record = RunLog(tables).start(ACCOUNT, "full")
    assert rows(tables.runs) == {record.run_id, "~latest~full"} and rows(tables.run_index) == {"running~" + record.run_id}
    RunLog(tables).finish(record, "succeeded", {}, 0, 0)
    assert rows(tables.runs) == {record.run_id, "~latest~full", "~completed~full"} and rows(tables.run_index) == set()


def test_a_running_copy_left_by_a_crash_is_passed_over_and_removed_by_the_next_close(tables):
    record = RunLog(tables).start(ACCOUNT, "full")
    RunLog(tables).finish(record, "succeeded", {}, 0, 0)
    tables.run_index.create_entity({"PartitionKey": ACCOUNT, "RowKey": "running~" + record.run_id,
                                    "RunId": record.run_id, "Mode": "full", "StartedAt": T0, "Outcome": "running"})
    [left] = RunLog(tables).running(ACCOUNT)  # the process died after the finish, before the copy went
    RunLog(tables).abandon(left, "its process stopped")
    assert RunLog(tables).running(ACCOUNT) == [] and RunLog(tables).abandoned(ACCOUNT) == []
    assert RunLog(tables).newest(ACCOUNT, "full").outcome == "succeeded"


@pytest.fixture
def events(storage_connection, table_prefix, request_log):
    service = TableServiceClient.from_connection_string(storage_connection, raw_request_hook=request_log,
                                                        raw_response_hook=request_log.on_response)
    store = WebhookEventStore(service, table_prefix + "WebhookEvents")
    yield store
    store.delete_table()


def accept(events, at=T0):
    customer = new_tenant()
    event = PartnerCenterEvent(RESELLER_RELATIONSHIP_ACCEPTED,
                               f"https://api.partnercenter.microsoft.com/v1/customers/{customer}", customer, "",
                               at.isoformat(), customer)
    return events.accept(ACCOUNT, event, b"{}", now=at)[0]


def test_the_drain_and_status_read_pending_events_by_key_however_many_were_processed(events, request_log):
    pending = accept(events)
    _, empty = reads(request_log, lambda: list(events.with_status(ACCOUNT, PENDING)))
    for _ in range(HISTORY):
        events.mark_processed(accept(events), "run1")
    failed = accept(events)
    for _ in range(MAX_ATTEMPTS):
        failed = events.get(ACCOUNT, failed.key)
        events.mark_attempt_failed(failed, "boom")

    found, read = reads(request_log, lambda: list(events.with_status(ACCOUNT, PENDING)))
    assert [e.key for e in found] == [pending.key] and read == empty
    found, read = reads(request_log, lambda: list(events.with_status(ACCOUNT, FAILED)))
    assert [(e.key, e.attempts) for e in found] == [(failed.key, MAX_ATTEMPTS)] and read == 2
    assert events.mark_processed(events.get(ACCOUNT, pending.key), "run2")
    assert list(events.with_status(ACCOUNT, PENDING)) == []


def test_an_event_stored_twice_is_one_event_with_one_index_row(events):
    stored = accept(events)
    again, new = events.accept(ACCOUNT, PartnerCenterEvent(
        RESELLER_RELATIONSHIP_ACCEPTED, f"https://api.partnercenter.microsoft.com/v1/customers/"
        f"{stored.customer_tenant_id}", stored.customer_tenant_id, "", T0.isoformat(), stored.customer_tenant_id),
        b"{}", now=T0)
    assert not new and again.key == stored.key
    assert [e.key for e in events.with_status(ACCOUNT, PENDING)] == [stored.key]
    assert events.mark_processed(stored, "run1") is True
    assert events.mark_processed(stored, "run2") is False  # a second worker with the same read loses
    assert list(events.with_status(ACCOUNT, PENDING)) == []


def test_pending_holds_are_read_by_key_however_many_were_decided(tables, request_log):
    held = HeldEndings(tables)
    for index in range(30):
        decided = held.hold(ACCOUNT, f"run{index}", [str(uuid.uuid4())], 10)
        held.reject(ACCOUNT, decided, by="ops@contoso.example")
    waiting = held.hold(ACCOUNT, "run-last", [new_tenant(), new_tenant()], 10)

    found, read = reads(request_log, lambda: held.pending(ACCOUNT))
    assert [h.held_id for h in found] == [waiting] and read == 3  # ~indexed, ~open~…, the header
    held.approve(ACCOUNT, waiting)
    assert held.pending(ACCOUNT) == [] and [h.held_id for h in held.approving(ACCOUNT)] == [waiting]
    held.complete_approval(ACCOUNT, waiting, ended=2, kept=0)
    assert held.approving(ACCOUNT) == [] and reads(request_log, lambda: held.pending(ACCOUNT))[1] == 1


def test_holds_kept_before_the_index_are_found_and_indexed_by_the_next_hold(tables):
    held = HeldEndings(tables)
    waiting = held.hold(ACCOUNT, "run1", [new_tenant()], 10)
    for row in ("~indexed", "~open~" + waiting):
        tables.held.delete_entity(ACCOUNT, row)
    assert [h.held_id for h in held.pending(ACCOUNT)] == [waiting]  # read by a filter; a read writes nothing
    assert not list(tables.held.query_entities("PartitionKey eq @pk and RowKey ge '~'", parameters={"pk": ACCOUNT}))
    assert held.hold(ACCOUNT, "run2", [new_tenant()], 10) == waiting  # the same disappearance, seen again
    marks = {e["RowKey"] for e in tables.held.query_entities("PartitionKey eq @pk and RowKey ge '~'",
                                                             parameters={"pk": ACCOUNT})}
    assert marks == {"~indexed", "~open~" + waiting}
