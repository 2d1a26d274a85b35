"""A webhook delivery (the simulator posting a signed event to the real receiver function, served
locally) and a contact-edit validation call export the spans and logs an operator needs."""

from __future__ import annotations

import json
import uuid

import azure.functions as func
from opentelemetry.trace import SpanKind

from shared import app
from devstack.local.host import call_http
from shared.telemetry import names
from tests.webhooks.conftest import event_queues, eventually, functions_server, listening, receiver  # noqa: F401


def test_a_webhook_delivery_is_one_trace_from_receive_to_organization(otel, receiver, listening):
    tenant = receiver.sim.accept_relationship(company_name="Traced Ltd")
    eventually(lambda: receiver.organization(tenant))
    eventually(lambda: [e["Status"] for e in receiver.stored_events()] == ["processed"])
    synced = eventually(lambda: [r for r in otel.logs() if "synced" in str(r.body) and tenant in str(r.body)])
    received = [s for s in otel.spans() if s.kind == SpanKind.SERVER and "partner-center/events" in s.name]
    assert len(received) == 1 and received[0].attributes["http.response.status_code"] == 200
    trace_id = received[0].context.trace_id
    # The processing, on the queue trigger, continues the receive's trace: the message carried it.
    processed = [s for s in otel.spans() if s.name == names.SPAN_WEBHOOK_PROCESS]
    assert len(processed) == 1 and processed[0].kind == SpanKind.CONSUMER
    assert processed[0].context.trace_id == trace_id and processed[0].parent is not None
    assert processed[0].attributes["messaging.destination.name"] == "webhook-events"
    # The customer's one Partner Center call, made by the queue trigger, is in the receive's trace.
    calls = [s for s in otel.spans() if names.REQUEST_ID in (s.attributes or {})]
    assert [s.context.trace_id for s in calls] == [trace_id]
    assert calls[0].attributes["http.response.status_code"] == 200
    stored = [s for s in otel.spans() if s.name.startswith("TableClient.") and s.context.trace_id == trace_id]
    assert stored, "the event and the organization are written inside the receive's trace"
    assert synced[0].trace_id == trace_id
    exported = otel.everything()
    assert receiver.sim.client_secret not in exported and "Bearer" not in exported


def configured(monkeypatch, storage_connection) -> None:
    
    monkeypatch.delenv("PARTNER_CENTER_ACCOUNTS", raising=False)
    for name, value in {"SYNC_STORAGE_CONNECTION": storage_connection, "PARTNER_CENTER_TENANT_ID": str(uuid.uuid4()),
                        "PARTNER_CENTER_CLIENT_ID": str(uuid.uuid4()),
                        "PARTNER_CENTER_ACCOUNT_ID": "val-" + uuid.uuid4().hex[:8]}.items():
        monkeypatch.setenv(name, value)
    app.use(None)


def test_a_validation_call_is_a_server_span_with_its_table_read(otel, storage_connection, monkeypatch):
    configured(monkeypatch, storage_connection)
    body = json.dumps({"customerTenantId": str(uuid.uuid4()), "primaryContact": {"email": "a@example.com"}})
    request = func.HttpRequest("POST", "http://localhost/api/contacts/validate", headers={
        "Content-Type": "application/json"}, body=body.encode())
    response = call_http("validate_contact_edit", request)
    assert response.status_code == 200 and json.loads(response.get_body())["allowed"] is True
    server = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    assert len(server) == 1 and server[0].attributes["faas.name"] == "validate_contact_edit"
    assert server[0].attributes["http.response.status_code"] == 200
    reads = [s for s in otel.spans() if s.name.startswith("TableClient.")]
    assert reads and {s.context.trace_id for s in reads} == {server[0].context.trace_id}


def test_a_malformed_validation_call_is_a_4xx_span_not_an_error(otel, storage_connection, monkeypatch):
    configured(monkeypatch, storage_connection)
    request = func.HttpRequest("POST", "http://localhost/api/contacts/validate", body=b"{not json")
    assert call_http("validate_contact_edit", request).status_code == 400
    server = [s for s in otel.spans() if s.kind == SpanKind.SERVER]
    assert server[0].attributes["http.response.status_code"] == 400
