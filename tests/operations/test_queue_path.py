"""Timer → one unit per account → the queue trigger runs each account, on Azurite's queue service."""

from __future__ import annotations

import pytest
import base64
import json
import logging
from datetime import datetime, timedelta, timezone

from shared import app
from devstack.local.host import fire_timer, function_index
from devstack.local.queues import COMPLETED, PARKED, RETRYING
from shared.sync.engine import FULL, INCREMENTAL
from shared.operations.units import (
    PARKED_RUN_MODE,
    UNIT_QUEUE,
    SyncUnit,
    UnitQueue,
    enqueue_units,
    poison_units,
)


def _poison_units() -> list[dict]:
    wired = app.current()
    return poison_units(wired.unit_queue, wired.stores, {account.id for account in wired.settings.accounts})


def queued_units(queue) -> list[dict]:
    return [json.loads(base64.b64decode(m.content)) for m in queue.peek_messages(max_messages=32)]


def organization_ids(stores, account: str) -> list[str]:
    return sorted(org["RowKey"] for org in stores.organizations.list(account))


def customer_ids(simulator, partner_index: int) -> list[str]:
    return sorted(c["id"] for c in simulator.customers(simulator.partners()[partner_index].tenant_id))


def runs(stores, account: str) -> list:
    return stores.runs.latest(account, limit=50)


def test_the_queue_function_listens_on_sync_units_through_azure_web_jobs_storage():
    binding = function_index()["process_sync_unit"].get_trigger().get_dict_repr()
    assert binding["type"] == "queueTrigger"
    assert binding["queueName"] == UNIT_QUEUE and binding["connection"] == "AzureWebJobsStorage"


def test_the_timer_in_queue_mode_sends_one_unit_per_account_and_runs_none(configure_accounts, queues, stores):
    accounts = configure_accounts(customers=[25, 4, 3])
    fire_timer("incremental_sync")
    units = queued_units(queues[UNIT_QUEUE])
    assert sorted(u["account"] for u in units) == accounts
    assert {u["mode"] for u in units} == {INCREMENTAL}
    assert all(datetime.fromisoformat(u["requestedAt"]).utcoffset() == timedelta(0) for u in units)
    assert all(runs(stores, account) == [] for account in accounts)


@pytest.mark.slow
def test_units_from_the_full_timer_sync_every_account_through_the_queue_trigger(configure_accounts, runner,
                                                                                  stores, queued_app):
    accounts = configure_accounts(customers=[25, 6, 3])
    fire_timer("full_reconciliation")
    deliveries = runner.drain(timeout=30)
    assert [d.result for d in deliveries] == [COMPLETED] * 3
    for index, account in enumerate(accounts):
        assert organization_ids(stores, account) == customer_ids(queued_app, index)
        [run] = runs(stores, account)
        assert (run.mode, run.outcome) == (FULL, "succeeded")


@pytest.mark.slow
def test_a_unit_whose_run_keeps_failing_is_retried_then_parked_and_reported(configure_accounts, runner,
                                                                              stores, queues, queued_app):
    good, failing = configure_accounts(customers=[25, 4], bad_secret=frozenset({1}))
    fire_timer("full_reconciliation")
    deliveries = runner.drain(timeout=30)
    attempts = [d for d in deliveries if d.result != COMPLETED]
    assert [(d.dequeue_count, d.result) for d in attempts] == \
        [(1, RETRYING), (2, RETRYING), (3, RETRYING), (4, RETRYING), (5, PARKED)]
    assert all(failing in d.error for d in attempts)
    assert organization_ids(stores, good) == customer_ids(queued_app, 0)  # one account's failure blocks no other

    [parked] = _poison_units()
    assert (parked["account"], parked["mode"]) == (failing, FULL)
    assert "after 5 failed attempts" in parked["problem"] and parked["messageId"] and parked["parkedAt"]
    assert [u["messageId"] for u in app.current().status.account(failing)["parked_units"]] == [parked["messageId"]]
    assert app.current().status.account(good)["parked_units"] == []
    logged = runs(stores, failing)
    assert (logged[0].mode, logged[0].outcome) == (PARKED_RUN_MODE, "parked")
    assert [r.outcome for r in logged[1:]] == ["failed"] * 5
    assert queues[UNIT_QUEUE].get_queue_properties().approximate_message_count == 0


def test_malformed_messages_are_parked_at_once_with_a_clear_log_line(queued_app, runner, queues, caplog):
    units = queues[UNIT_QUEUE]
    bodies = [b"not json", b'{"account": "a1", "mode": "full", "requestedAt": "2025-01-01T00:00:00+00:00", "x": 1}',
              b'{"account": "a1", "mode": "everything", "requestedAt": "2025-01-01T00:00:00+00:00"}',
              b'{"account": "a1", "mode": "full", "requestedAt": "yesterday"}', b'["a1", "full"]']
    for body in bodies:
        units.send_message(base64.b64encode(body).decode())
    units.send_message("{not base64}")
    with caplog.at_level(logging.ERROR):
        deliveries = runner.drain(timeout=30)
    # The function parks what it cannot read and returns; the host parks what it cannot decode.
    assert sorted((d.dequeue_count, d.result) for d in deliveries) == [(1, COMPLETED)] * 5 + [(1, PARKED)]
    problems = [p["problem"] for p in _poison_units()]
    assert len(problems) == 6 and all(p.startswith("malformed unit:") for p in problems)
    assert any("unknown field(s) 'x'" in p for p in problems) and any("'mode' must be" in p for p in problems)
    assert sum("malformed unit" in r.getMessage() and "sync-units-poison" in r.getMessage()
               for r in caplog.records) == 5
    assert queues[UNIT_QUEUE].get_queue_properties().approximate_message_count == 0


def test_a_unit_for_an_account_that_is_not_configured_is_parked(configure_accounts, runner):
    configure_accounts(customers=[25])
    app.current().unit_queue.send(SyncUnit("gone-account", INCREMENTAL, datetime.now(timezone.utc)))
    [delivery] = runner.drain(timeout=30)
    assert delivery.result == COMPLETED
    [parked] = _poison_units()
    assert parked["account"] == "gone-account" and "not configured" in parked["problem"]


@pytest.mark.slow
def test_two_units_for_one_account_at_once_make_one_run(configure_accounts, runner, stores, queued_app):
    [account] = configure_accounts(customers=[25])
    queued_app.set_latency(0.03)  # a run of about a second, so both units meet it
    enqueue_units(FULL, settings=app.current().settings, queue=app.current().unit_queue)
    enqueue_units(FULL, settings=app.current().settings, queue=app.current().unit_queue)
    deliveries = runner.run_batch()  # one instance takes both and runs them in parallel
    assert [d.result for d in deliveries] == [COMPLETED, COMPLETED]
    outcomes = sorted(r.outcome for r in runs(stores, account))
    assert outcomes == ["skipped", "succeeded"]
    assert organization_ids(stores, account) == customer_ids(queued_app, 0)


@pytest.mark.slow
def test_a_unit_requested_before_a_completed_run_started_is_covered_by_it(configure_accounts, runner, stores):
    [account] = configure_accounts(customers=[25])
    requested = datetime.now(timezone.utc) - timedelta(seconds=5)
    [result] = app.current().run_accounts(INCREMENTAL)
    enqueue_units(INCREMENTAL, settings=app.current().settings, queue=app.current().unit_queue, now=requested)
    enqueue_units(FULL, settings=app.current().settings, queue=app.current().unit_queue, now=requested)  # the first run was a full one: it covers both modes' units
    assert [d.result for d in runner.drain(timeout=30)] == [COMPLETED, COMPLETED]
    assert [r.run_id for r in runs(stores, account)] == [result.run_id]


def test_a_reconciliation_that_checkpoints_carries_on_in_follow_up_units(configure_accounts, runner, stores,
                                                                          monkeypatch, queued_app):
    [account] = configure_accounts(customers=[25])
    monkeypatch.setenv("PARTNER_CENTER_PAGE_SIZE", "10")
    monkeypatch.setenv("SYNC_TIME_BUDGET_SECONDS", "1")  # every page is the last that fits
    # The time budget is what this test stops on, not the request budget's pace: paced at 450 a
    # minute, the background lane gives a 1 s invocation about 7 calls, less than one page's 11.
    monkeypatch.setenv("PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE", "100000")
    app.use(None)
    fire_timer("full_reconciliation")
    deliveries = runner.drain(timeout=30)
    outcomes = [r.outcome for r in reversed(runs(stores, account))]
    assert outcomes == ["checkpointed", "checkpointed", "succeeded"]
    assert len(deliveries) == 3 and all(d.result == COMPLETED for d in deliveries)
    assert organization_ids(stores, account) == customer_ids(queued_app, 0)


def test_the_local_runner_reads_max_polling_interval_from_host_json():
    from shared.host_config import queue_options

    assert queue_options().max_polling_interval_seconds == 1


@pytest.mark.slow
def test_a_listening_trigger_backs_off_no_further_than_max_polling_interval(queued_app, queues):
    import time
    from dataclasses import replace

    from devstack.local.queues import QueueListeners
    from shared.host_config import queue_options

    options = replace(queue_options(), max_polling_interval_seconds=0.5)
    with QueueListeners(["process_sync_unit"], options=options) as listeners:
        time.sleep(3)  # idle long enough to back off all the way
        sent = time.monotonic()
        queues[UNIT_QUEUE].send_message(base64.b64encode(b"not a unit").decode())  # parked at once
        while not listeners.deliveries() and time.monotonic() - sent < 10:
            time.sleep(0.01)
        waited = time.monotonic() - sent
        assert [d.result for d in listeners.deliveries()] == [COMPLETED]
    assert waited < 0.5 + 1.0, f"picked up after {waited:.2f} s"
