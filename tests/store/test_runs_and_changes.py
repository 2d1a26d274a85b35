"""Run log and change log (docs/storage.md)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shared.keys import newest_first_id
from shared.store import ChangeEntry, ChangeLog, RunLog
from tests.store.conftest import ACCOUNT, T0, new_tenant


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self):
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def runs(tables) -> RunLog:
    return RunLog(tables, clock=Clock())


@pytest.fixture
def changes(tables) -> ChangeLog:
    return ChangeLog(tables)


def test_a_started_run_is_running(runs):
    record = runs.start(ACCOUNT, "incremental")
    (latest,) = runs.latest(ACCOUNT)
    assert latest.run_id == record.run_id and latest.outcome == "running" and latest.finished_at is None


def test_a_finished_run_has_its_outcome_counts_and_api_calls(runs):
    record = runs.start(ACCOUNT, "full")
    runs.finish(record, "succeeded", {"created": 3, "unchanged": 7, "excluded_skipped": 1}, api_calls=12,
                throttled_calls=2)
    (latest,) = runs.latest(ACCOUNT)
    assert latest.outcome == "succeeded" and latest.finished_at > latest.started_at
    assert latest.counts == {"created": 3, "updated": 0, "unchanged": 7, "ended": 0, "failed": 0, "held": 0,
                             "excluded_skipped": 1}
    assert (latest.api_calls, latest.throttled_calls) == (12, 2)


def test_runs_are_listed_newest_first_and_by_mode(runs):
    ids = [runs.start(ACCOUNT, mode).run_id for mode in ("full", "incremental", "incremental", "manual")]
    assert [record.run_id for record in runs.latest(ACCOUNT)] == ids[::-1]
    assert [record.run_id for record in runs.latest(ACCOUNT, mode="incremental")] == [ids[2], ids[1]]
    assert len(runs.latest(ACCOUNT, limit=2)) == 2


def test_last_completed_skips_failed_and_running_runs(runs):
    done = runs.start(ACCOUNT, "full")
    runs.finish(done, "succeeded_with_failures", {"failed": 1}, 10, 0)
    runs.finish(runs.start(ACCOUNT, "full"), "failed", {}, 1, 0, error="credentials rejected")
    runs.start(ACCOUNT, "full")
    runs.finish(runs.start(ACCOUNT, "incremental"), "succeeded", {}, 1, 0)
    assert runs.last_completed(ACCOUNT, "full").run_id == done.run_id
    assert runs.last_completed(ACCOUNT, "manual") is None


def test_unknown_counts_are_refused(runs):
    record = runs.start(ACCOUNT, "full")
    with pytest.raises(ValueError):
        runs.finish(record, "succeeded", {"deleted": 1}, 0, 0)


def test_a_long_error_is_cut_short(runs):
    record = runs.finish(runs.start(ACCOUNT, "full"), "failed", {}, 0, 0, error="x" * 5000)
    assert len(record.error) == 1000 and runs.latest(ACCOUNT)[0].error == record.error


def test_a_run_changes_are_recorded_in_batches_and_read_back(changes, request_log):
    entries = [ChangeEntry(new_tenant(), "update", T0, {"PrimaryCity": ("London", "Leeds")}) for _ in range(150)]
    assert changes.record(ACCOUNT, "run1", entries) == 150
    # Two to the run's partition and two to the organizations' histories.
    assert len(request_log.batches()) == 4
    read = {entry.tenant_id: entry for entry in changes.for_run(ACCOUNT, "run1")}
    assert len(read) == 150
    assert read[entries[0].tenant_id].changes == {"PrimaryCity": ("London", "Leeds")}
    assert read[entries[0].tenant_id].run_id == "run1"


def test_recording_the_same_run_again_does_not_double_entries(changes):
    entry = ChangeEntry(new_tenant(), "create", T0, {"CompanyName": ("", "Contoso")})
    changes.record(ACCOUNT, "run1", [entry])
    changes.record(ACCOUNT, "run1", [entry])
    assert len(changes.for_run(ACCOUNT, "run1")) == 1


def test_an_organization_history_is_newest_first_and_stays_in_its_account(changes):
    tenant, other = new_tenant(), new_tenant()
    runs = [newest_first_id(T0 + timedelta(hours=hour)) for hour in range(3)]
    for hour, run in enumerate(runs):
        changes.record(ACCOUNT, run, [ChangeEntry(tenant, "update", T0 + timedelta(hours=hour), {}),
                                      ChangeEntry(other, "update", T0 + timedelta(hours=hour), {})])
    # "contoso" is a prefix of ACCOUNT's id and shares the tenant: its entries must not leak in.
    changes.record("contoso", newest_first_id(T0 + timedelta(days=9)), [ChangeEntry(tenant, "update", T0, {})])
    changes.record(f"{ACCOUNT}_x", newest_first_id(T0 + timedelta(days=9)), [ChangeEntry(tenant, "update", T0, {})])
    history = changes.for_organization(ACCOUNT, tenant, limit=2)
    assert [(entry.run_id, entry.tenant_id) for entry in history] == [(runs[2], tenant), (runs[1], tenant)]


def test_an_organization_history_is_a_range_read_however_long_the_log(changes, request_log):
    tenant = new_tenant()
    changes.record(ACCOUNT, newest_first_id(T0), [ChangeEntry(tenant, "create", T0, {"CompanyName": ("", "A")})])
    for hour in range(1, 4):  # 3 runs of 100 other organizations' changes
        at = T0 + timedelta(hours=hour)
        changes.record(ACCOUNT, newest_first_id(at), [ChangeEntry(new_tenant(), "update", at, {}) for _ in range(100)])
    request_log.clear()
    [entry] = changes.for_organization(ACCOUNT, tenant)
    assert entry.kind == "create" and entry.changes == {"CompanyName": ("", "A")}
    assert request_log.returned_entities() == 1 and request_log.filtered_columns() <= {"PartitionKey", "RowKey"}


def test_history_written_before_the_organization_copies_existed_is_still_found(changes):
    tenant, run = new_tenant(), newest_first_id(T0)
    changes.record(ACCOUNT, run, [ChangeEntry(tenant, "update", T0, {"CompanyName": ("A", "B")})])
    changes._table.delete_entity(ACCOUNT, f"{tenant}|{run}")
    [entry] = changes.for_organization(ACCOUNT, tenant)
    assert (entry.run_id, entry.changes) == (run, {"CompanyName": ("A", "B")})


def test_oversize_values_are_cut_in_the_change_log(changes):
    tenant = new_tenant()
    changes.record(ACCOUNT, "run1", [ChangeEntry(tenant, "update", T0, {"PrimaryAddressLine1": ("", "x" * 30000)})])
    (entry,) = changes.for_run(ACCOUNT, "run1")
    assert entry.changes["PrimaryAddressLine1"][1] == "x" * 200 + "…"


def test_a_run_that_finishes_while_it_is_being_abandoned_keeps_its_outcome(runs, monkeypatch):
    # Two runs of one account start together: the one that gets the lease closes the other's
    # "running" row just as that one finishes as skipped. The finish wins; nothing raises.
    record = runs.start(ACCOUNT, "full")
    read = runs._table.get_entity

    def read_then_finish(*args, **kwargs):
        current = read(*args, **kwargs)
        runs.finish(record, "skipped", {}, api_calls=0, throttled_calls=0, error="another run holds the lease")
        return current

    monkeypatch.setattr(runs._table, "get_entity", read_then_finish)
    runs.abandon(record, "the run never finished")
    monkeypatch.undo()
    (latest,) = runs.latest(ACCOUNT)
    assert latest.outcome == "skipped" and latest.error == "another run holds the lease"
