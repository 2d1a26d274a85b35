"""Webhook events through the ``webhook-events`` queue: at-least-once, idempotent, poison handling.

The simulator delivers signed events to the receiver over real sockets; the queue trigger runs
through the local host's runner on Azurite's queue service, or in a worker process of its own.
"""

from __future__ import annotations

import base64
import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shared import app
from devstack.local.host import function_index
from devstack.local.queues import COMPLETED, PARKED, RETRYING, QueueTriggerRunner
from shared.webhooks.processing import poison_events, process_pending_events
from shared.webhooks.queue import EVENT_QUEUE, EventMessage
from tests.webhooks.conftest import eventually

ROOT = Path(__file__).resolve().parents[2]


def stored_and_queued(receiver) -> tuple[str, str]:
    """A customer accepts; its event is stored and queued (no trigger listens yet)."""
    tenant = receiver.sim.accept_relationship()
    receiver.sim.wait_for_webhooks()
    [event] = receiver.stored_events()
    return tenant, event["RowKey"]


def webhook_events(receiver) -> dict:
    return app.current().status.account(receiver.account_id)["webhook_events"]


def _poison_events() -> list[dict]:
    wired = app.current()
    return poison_events(wired.event_queue, wired.events, {account.id for account in wired.settings.accounts})


def test_the_queue_function_listens_on_webhook_events_through_azure_web_jobs_storage():
    binding = function_index()["process_webhook_event"].get_trigger().get_dict_repr()
    assert binding["type"] == "queueTrigger"
    assert binding["queueName"] == EVENT_QUEUE and binding["connection"] == "AzureWebJobsStorage"


def test_the_processing_does_not_import_the_runs_or_the_wiring_above_it():
    # The wiring composes, the processing only uses what it is handed (docs/architecture.md).
    check = ("import sys, shared.webhooks.processing; "
             "sys.exit('shared.operations.accounts' in sys.modules or 'shared.app' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", check], cwd=ROOT).returncode == 0


def test_a_queued_event_becomes_an_organization_through_the_trigger(receiver):
    tenant, key = stored_and_queued(receiver)
    with QueueTriggerRunner("process_webhook_event") as runner:
        [delivery] = runner.drain(timeout=30)
    assert delivery.result == COMPLETED
    assert receiver.organization(tenant)["Status"] == "active"
    assert [(e["RowKey"], e["Status"]) for e in receiver.stored_events()] == [(key, "processed")]


@pytest.mark.slow
def test_a_worker_killed_mid_message_leaves_it_to_be_processed_again_after_its_visibility_timeout(receiver):
    tenant, _ = stored_and_queued(receiver)
    receiver.sim.set_latency(4)  # the worker's Partner Center call hangs: it dies mid-message
    worker = subprocess.Popen([sys.executable, "-c", (
        "from devstack.local.queues import QueueTriggerRunner\n"
        "with QueueTriggerRunner('process_webhook_event', in_flight_seconds=2) as runner:\n"
        "    runner.run_batch()\n")], cwd=ROOT)
    try:
        # Received: hidden from peeks, still counted in the queue.
        eventually(lambda: receiver.queued() == [] and
                   receiver.queue.get_queue_properties().approximate_message_count == 1, timeout=20)
        time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
        assert worker.wait(10) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
    receiver.sim.set_latency(0)
    assert receiver.organization(tenant) is None
    [event] = receiver.stored_events()
    assert (event["Status"], event["Attempts"]) == ("pending", 0)  # the dead attempt recorded nothing

    with QueueTriggerRunner("process_webhook_event") as runner:
        [delivery] = runner.drain(timeout=30)  # the message comes back once its 2 s are up
    assert (delivery.dequeue_count, delivery.result) == (2, COMPLETED)
    assert receiver.organization(tenant)["Status"] == "active"
    assert [e["Status"] for e in receiver.stored_events()] == ["processed"]


def test_an_event_whose_sync_keeps_failing_is_poisoned_shown_in_status_and_left_to_the_drain(receiver):
    receiver.sim.inject("get_customer", "status", status=400, times=5)
    tenant, key = stored_and_queued(receiver)
    with QueueTriggerRunner("process_webhook_event", retry_after_seconds=0) as runner:
        deliveries = runner.drain(timeout=30)
    assert [(d.dequeue_count, d.result) for d in deliveries] == \
        [(1, RETRYING), (2, RETRYING), (3, RETRYING), (4, RETRYING), (5, PARKED)]
    assert receiver.queued() == []

    status = webhook_events(receiver)
    assert status["counts"] == {"pending": 1, "failed": 0, "poisoned": 1}
    [poisoned] = status["poisoned"]
    assert (poisoned["account"], poisoned["event"]) == (receiver.account_id, key)
    assert "failed on every attempt (5 so far" in poisoned["problem"] and poisoned["poisonedAt"]
    assert [e["attempts"] for e in status["pending"]] == [5]

    # The incremental run's drain is the safety net; the poisoned message then says so.
    assert process_pending_events(app.current().settings, app.current().events, sync_for=app.current().interactive_sync)["processed"] == 1
    assert receiver.organization(tenant)["Status"] == "active"
    [poisoned] = webhook_events(receiver)["poisoned"]
    assert poisoned["problem"].startswith("the event is processed now")


def test_malformed_messages_are_parked_at_once_with_a_reason(receiver, caplog):
    key = "a" * 64
    bodies = [b"not json", b'["a", "b"]', json.dumps({"account": receiver.account_id, "event": key, "x": 1}).encode(),
              json.dumps({"account": receiver.account_id, "event": "not-a-key"}).encode(),
              json.dumps({"account": "no such account!", "event": key}).encode(),
              json.dumps({"account": receiver.account_id, "event": key, "traceContext": ["traceparent"]}).encode()]
    for body in bodies:
        receiver.queue.send_message(base64.b64encode(body).decode())
    receiver.queue.send_message("{not base64}")
    with caplog.at_level(logging.ERROR), QueueTriggerRunner("process_webhook_event") as runner:
        deliveries = runner.drain(timeout=30)
    # The function parks what it cannot read and returns; the host parks what it cannot decode.
    assert sorted((d.dequeue_count, d.result) for d in deliveries) == [(1, COMPLETED)] * 6 + [(1, PARKED)]
    problems = [p["problem"] for p in _poison_events()]
    assert len(problems) == 7 and all(p.startswith("malformed event message:") for p in problems)
    assert any("unknown field(s) 'x'" in p for p in problems)
    assert any("'event' must be" in p for p in problems) and any("'traceContext' must be" in p for p in problems)
    assert sum("malformed event message" in r.getMessage() and "webhook-events-poison" in r.getMessage()
               for r in caplog.records) == 6
    assert receiver.queue.get_queue_properties().approximate_message_count == 0


def test_a_message_for_an_unknown_account_or_event_is_parked(receiver):
    
    queue = app.current().event_queue
    queue.send(EventMessage("gone-account", "b" * 64))
    queue.send(EventMessage(receiver.account_id, "c" * 64))
    with QueueTriggerRunner("process_webhook_event") as runner:
        assert [d.result for d in runner.drain(timeout=30)] == [COMPLETED, COMPLETED]
    problems = sorted(p["problem"] for p in _poison_events())
    assert problems == ["account gone-account is not configured", "no such stored event"]


def test_a_message_for_an_event_already_processed_is_acknowledged_without_calling_partner_center(receiver):
    tenant, _ = stored_and_queued(receiver)
    assert process_pending_events(app.current().settings, app.current().events, sync_for=app.current().interactive_sync)["processed"] == 1  # the drain came first
    receiver.sim.reset_counters()
    with QueueTriggerRunner("process_webhook_event") as runner:
        [delivery] = runner.drain(timeout=30)
    assert delivery.result == COMPLETED
    assert receiver.sim.counters().get("get_customer", 0) == 0
    assert _poison_events() == []


def test_when_the_queue_refuses_the_event_is_still_answered_200_and_left_for_the_drain(receiver, monkeypatch,
                                                                                         storage_connection):
    # The queue's account refuses us (a wrong key): the event is stored, so the sender gets its 200.
    wrong_key = base64.b64encode(b"not the account key").decode()
    broken = ";".join(f"AccountKey={wrong_key}" if part.startswith("AccountKey=") else part
                      for part in storage_connection.split(";"))
    monkeypatch.setenv("AzureWebJobsStorage", broken)
    app.use(None)
    tenant = receiver.sim.accept_relationship()
    receiver.sim.wait_for_webhooks()
    [delivery] = receiver.sim.webhook_deliveries()
    assert delivery.status == 200 and json.loads(delivery.response_body)["queued"] is False
    assert receiver.queued() == []
    [event] = webhook_events(receiver)["pending"]
    assert event["customerTenantId"] == tenant

    assert process_pending_events(app.current().settings, app.current().events, sync_for=app.current().interactive_sync)["processed"] == 1
    assert receiver.organization(tenant)["Status"] == "active"


def test_the_drain_takes_no_event_once_its_deadline_has_passed(receiver):
    tenant, _ = stored_and_queued(receiver)
    sync_for = app.current().interactive_sync
    counts = process_pending_events(app.current().settings, app.current().events, sync_for=sync_for, deadline=time.monotonic())
    assert counts == {"processed": 0, "failed": 0, "pending": 1, "skipped": 0}
    assert receiver.organization(tenant) is None
    counts = process_pending_events(app.current().settings, app.current().events, sync_for=sync_for, deadline=time.monotonic() + 60)
    assert counts["processed"] == 1 and receiver.organization(tenant)["Status"] == "active"
