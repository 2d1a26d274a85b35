"""The page span the engine opens per page, and trace context carried across a real Azurite queue."""

from __future__ import annotations

import json
import uuid

import pytest
from azure.storage.queue import QueueClient

from shared import telemetry
from shared.telemetry import names


def test_a_page_span_is_a_child_of_its_run_with_the_runs_ids(otel):
    with telemetry.run_span("acct-pages", "full", correlation_id="corr-1") as run:
        telemetry.bind_run_id("run-42")
        with telemetry.page_span("acct-pages", "full", 3) as page:
            pass
    page_span, run_span = otel.spans(names.SPAN_PAGE)[0], otel.spans(names.SPAN_RUN)[0]
    assert page_span.parent.span_id == run_span.context.span_id
    assert page_span.attributes[names.PAGE_NUMBER] == 3
    assert page_span.attributes[names.RUN_ID] == run_span.attributes[names.RUN_ID] == "run-42"
    assert page_span.attributes[names.CORRELATION_ID] == "corr-1"
    assert page_span.attributes[names.ACCOUNT] == "acct-pages" and page_span.attributes[names.MODE] == "full"
    assert page is not run


def test_the_run_context_ends_with_its_span(otel):
    with telemetry.run_span("acct-ctx", "incremental"):
        assert telemetry.current_run().account_id == "acct-ctx"
    assert telemetry.current_run() is None


@pytest.fixture
def queue(storage_connection):
    client = QueueClient.from_connection_string(storage_connection, "trace" + uuid.uuid4().hex[:12])
    client.create_queue()
    yield client
    client.delete_queue()


def test_trace_context_crosses_a_storage_queue_in_the_message(otel, queue):
    tracer = telemetry.tracer()
    with tracer.start_as_current_span("webhook receive") as receive:
        queue.send_message(json.dumps({"event": "e-1", "trace": telemetry.inject_context()}))
    message = next(iter(queue.receive_messages()))
    fields = json.loads(message.content)
    with tracer.start_as_current_span("webhook process", context=telemetry.extract_context(fields["trace"])) as work:
        pass
    assert fields["trace"]["traceparent"].startswith("00-")
    assert work.get_span_context().trace_id == receive.get_span_context().trace_id
    processed = [s for s in otel.spans() if s.name == "webhook process"][0]
    assert processed.parent.span_id == receive.get_span_context().span_id


@pytest.mark.parametrize("carrier", [None, {}, {"traceparent": "not-a-traceparent"}, {"traceparent": 7}])
def test_a_message_without_usable_context_starts_a_new_trace(otel, carrier):
    with telemetry.tracer().start_as_current_span("process", context=telemetry.extract_context(carrier)):
        pass
    assert otel.spans("process")[0].parent is None


def test_outside_a_span_there_is_no_context_to_carry():
    assert telemetry.inject_context() == {}
