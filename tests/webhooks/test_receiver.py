"""The receiver over real sockets: what Partner Center's signed events do, and what forged,
tampered or malformed ones do not."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import azure.functions as func
import pytest
import requests

from devstack.local.host import function_index
from shared import app, telemetry
from devstack.local.queues import COMPLETED, RETRYING
from shared.webhooks.processing import process_pending_events, webhook_status
from tests.webhooks.conftest import eventually


def refused(delivery, status: int, problem_type: str) -> bool:
    body = json.loads(delivery.response_body)
    return (delivery.status == status and body["status"] == status
            and body["type"].endswith(":" + problem_type) and body["title"] and body["detail"])


def test_a_relationship_accepted_in_partner_center_is_an_organization_within_seconds(receiver, listening):
    tenant = receiver.sim.accept_relationship(company_name="Webhook Works Ltd")
    organization = eventually(lambda: receiver.organization(tenant))
    assert organization["CompanyName"] == "Webhook Works Ltd" and organization["Status"] == "active"
    [delivery] = receiver.sim.webhook_deliveries()
    assert delivery.status == 200 and json.loads(delivery.response_body)["queued"] is True
    eventually(lambda: [e["Status"] for e in receiver.stored_events()] == ["processed"])
    eventually(lambda: [d.result for d in listening.deliveries()] == [COMPLETED])  # through the queue trigger


def test_an_accepted_event_is_stored_and_queued_before_the_answer(receiver):
    tenant = receiver.sim.accept_relationship()
    receiver.sim.wait_for_webhooks()
    [event] = receiver.stored_events()
    assert (event["Status"], event["CustomerTenantId"]) == ("pending", tenant)
    [queued] = receiver.queued()
    assert (queued["account"], queued["event"]) == (receiver.account_id, event["RowKey"])
    # The receipt's trace context travels with the message (W3C traceparent; empty when nothing traces).
    assert set(queued["traceContext"]) <= {"traceparent", "tracestate"}
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[0-3]", queued["traceContext"].get("traceparent", "00-" + "0" * 32
                                                                                          + "-" + "0" * 16 + "-00"))
    assert receiver.organization(tenant) is None  # no trigger listens: nothing ran after the answer


def test_an_indirect_relationship_event_brings_the_customer_with_its_reseller(receiver, listening, monkeypatch):
    provider = receiver.sim.add_partner(resellers=1, customers=0)  # an indirect provider with one reseller
    monkeypatch.setenv("PARTNER_CENTER_TENANT_ID", provider.tenant_id)
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_ID", provider.client_id)
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_SECRET", provider.client_secret)
    app.use(None)
    receiver.sim.register_webhook(receiver.url, partner_tenant_id=provider.tenant_id)
    tenant = receiver.sim.accept_relationship(partner_tenant_id=provider.tenant_id,
                                              indirect_reseller_id=provider.reseller_ids[0])
    organization = eventually(lambda: receiver.organization(tenant))
    assert organization["IndirectResellerId"] == provider.reseller_ids[0]
    assert receiver.sim.webhook_deliveries()[-1].event_name == "indirect-reseller-relationship-accepted-by-customer"


def test_the_signature_may_come_in_the_x_ms_signature_header(receiver, listening):
    receiver.sim.register_webhook(receiver.url, ms_signature_header=True)
    tenant = receiver.sim.accept_relationship()
    eventually(lambda: receiver.organization(tenant))
    assert "x-ms-signature" in receiver.sim.webhook_deliveries()[-1].headers


@pytest.mark.parametrize(("variant", "status", "problem_type"), [
    ("forged", 401, "signature-invalid"),
    ("tampered", 401, "signature-invalid"),
    ("unsigned", 401, "signature-missing"),
    ("wrong-algorithm", 400, "signature-algorithm-unsupported"),
    ("foreign-certificate-url", 403, "certificate-url-refused"),
    ("untrusted-certificate", 403, "certificate-untrusted"),
    ("malformed", 400, "invalid-json"),
    ("oversize", 413, "body-too-large"),
])
def test_an_event_that_is_not_authentic_or_not_well_formed_is_refused_and_nothing_is_stored(
        receiver, variant, status, problem_type):
    # A real customer whose own event is not delivered: only the refusal keeps it out.
    receiver.sim.register_webhook(receiver.url, ["test-created"])
    tenant = receiver.sim.accept_relationship()
    delivery = receiver.sim.send_webhook_event(variant, tenant_id=tenant)
    assert refused(delivery, status, problem_type), delivery.response_body
    assert receiver.stored_events() == [] and receiver.queued() == []
    assert receiver.organization(tenant) is None


def test_a_signed_event_naming_a_customer_by_something_other_than_a_guid_is_refused(receiver):
    delivery = receiver.sim.send_webhook_event(tenant_id="not-a-guid")
    assert refused(delivery, 400, "invalid-event") and "GUID" in json.loads(delivery.response_body)["detail"]
    assert receiver.stored_events() == []


def test_an_event_for_an_account_that_is_not_configured_is_a_404(receiver):
    delivery = receiver.sim.send_webhook_event(url=receiver.url.replace(receiver.account_id, "nobody"))
    assert delivery.status == 404
    assert receiver.stored_events() == []


@pytest.fixture
def not_stored(monkeypatch) -> list[tuple[str, str]]:
    """The (account, reason) of each event counted in pcsync.webhook_events.not_stored."""
    counted: list[tuple[str, str]] = []
    monkeypatch.setattr(telemetry, "record_event_not_stored", lambda account, reason: counted.append((account, reason)))
    return counted


def test_an_event_we_do_not_handle_is_acknowledged_and_not_stored(receiver, not_stored):
    delivery = receiver.sim.send_webhook_event(event_name="subscription-updated")
    answer = json.loads(delivery.response_body)
    assert delivery.status == 200 and (answer["stored"], answer["reason"]) == (False, "unhandled-event")
    assert receiver.stored_events() == [] and receiver.queued() == []
    assert receiver.stored_organizations() == []
    assert not_stored == [(receiver.account_id, "unhandled-event")]


def test_a_stale_signed_event_is_acknowledged_and_not_stored(receiver, not_stored):
    # Signed by Partner Center, but changed eight days ago: a replay (of any partner's event).
    tenant = receiver.sim.accept_relationship()
    receiver.sim.wait_for_webhooks()
    stored_before = receiver.stored_events()
    changed = (datetime.now(timezone.utc) - timedelta(days=8)).strftime("%Y-%m-%dT%H:%M:%S.1234567Z")
    delivery = receiver.sim.send_webhook_event(tenant_id=tenant, changed_at=changed)
    answer = json.loads(delivery.response_body)
    assert delivery.status == 200 and (answer["stored"], answer["reason"]) == (False, "stale")
    assert "WEBHOOK_MAX_EVENT_AGE_DAYS" in answer["detail"]
    assert receiver.stored_events() == stored_before and not_stored == [(receiver.account_id, "stale")]
    # Within the window (WEBHOOK_MAX_EVENT_AGE_DAYS, 7 by default) the same customer's event is stored.
    recent = (datetime.now(timezone.utc) - timedelta(days=6)).isoformat()
    assert json.loads(receiver.sim.send_webhook_event(tenant_id=tenant, changed_at=recent).response_body)["stored"]
    assert len(receiver.stored_events()) == len(stored_before) + 1


def test_the_age_window_is_a_setting(receiver, monkeypatch):
    monkeypatch.setenv("WEBHOOK_MAX_EVENT_AGE_DAYS", "30")
    app.use(None)
    changed = (datetime.now(timezone.utc) - timedelta(days=8)).isoformat()
    delivery = receiver.sim.send_webhook_event(changed_at=changed)
    assert delivery.status == 200 and json.loads(delivery.response_body)["stored"] is True


def test_a_declared_content_length_over_the_cap_is_413_without_reading_the_body(receiver):
    class Unread(func.HttpRequest):
        read = False

        def get_body(self) -> bytes:
            Unread.read = True
            return super().get_body()

    request = Unread(method="POST", url=receiver.url, headers={"Content-Length": str(10 * 1024 * 1024)},
                     route_params={"accountId": receiver.account_id}, body=b"")
    answer = function_index()["receive_partner_center_event"].get_user_function()(request)
    assert answer.status_code == 413 and json.loads(answer.get_body())["type"].endswith(":body-too-large")
    assert not Unread.read and receiver.stored_events() == []


def test_certificate_urls_naming_the_same_file_cost_one_fetch_each(receiver):
    # 100 deliveries, each naming the certificate by a URL of its own on the allowed host: query,
    # fragment, doubled slashes and dot segments normalise to one URL; three missing files to three more.
    delivery = receiver.sim.send_webhook_event()
    assert delivery.status == 200
    app.use(None)  # a fresh worker: an empty certificate cache
    receiver.sim.reset_counters()
    real = delivery.headers["X-MS-Certificate-Url"]
    base, name = real.rsplit("/cert/", 1)
    spellings = [f"{real}?v={{i}}", f"{real}#f{{i}}", f"{base}//cert//{name}?x={{i}}", f"{base}/cert/./{name}#{{i}}",
                 f"{base}/cert/missing-{{m}}.cer?v={{i}}"]
    statuses = []
    for i in range(100):
        url = spellings[i % len(spellings)].format(i=i, m=i % 3)
        headers = {**delivery.headers, "X-MS-Certificate-Url": url}
        statuses.append(requests.post(receiver.url, data=delivery.body, headers=headers, timeout=10).status_code)
    assert statuses.count(200) == 80 and statuses.count(503) == 20  # the missing ones: certificate-unavailable
    assert receiver.sim.counters()["signing_certificate"] == 4


def test_a_duplicate_delivery_writes_the_organization_once(receiver, listening):
    tenant = receiver.sim.accept_relationship()
    first = eventually(lambda: receiver.organization(tenant))
    eventually(lambda: [e["Status"] for e in receiver.stored_events()] == ["processed"])
    receiver.sim.reset_counters()
    again = receiver.sim.replay_webhook_event()
    answered = json.loads(again.response_body)
    assert again.status == 200 and answered["duplicate"] is True and answered["queued"] is False
    assert receiver.organization(tenant).metadata["etag"] == first.metadata["etag"]
    assert receiver.sim.counters()["get_customer"] == 0
    assert len(receiver.stored_events()) == 1


def test_a_crash_between_storing_and_processing_is_recovered_by_the_next_run(receiver):
    # The instance dies right after the event is stored, queued and answered: no trigger runs.
    tenant = receiver.sim.accept_relationship()
    receiver.sim.wait_for_webhooks()
    assert [d.status for d in receiver.sim.webhook_deliveries()] == [200]
    assert receiver.organization(tenant) is None
    assert [e["customerTenantId"] for e in webhook_status(app.current().events, receiver.account_id)["pending"]] == [tenant]

    counts = process_pending_events(app.current().settings, app.current().events, sync_for=app.current().interactive_sync)
    assert counts == {"processed": 1, "failed": 0, "pending": 0, "skipped": 0}
    assert receiver.organization(tenant)["Status"] == "active"
    assert webhook_status(app.current().events, receiver.account_id)["pending"] == []


def test_a_failed_processing_is_retried_from_the_queue(receiver, listening):
    receiver.sim.inject("get_customer", "status", status=400, times=1)
    tenant = receiver.sim.accept_relationship()
    organization = eventually(lambda: receiver.organization(tenant), timeout=15)
    assert organization["Status"] == "active"
    eventually(lambda: [(e["Status"], e["Attempts"]) for e in receiver.stored_events()] == [("processed", 2)])
    eventually(lambda: [(d.dequeue_count, d.result) for d in listening.deliveries()] == [(1, RETRYING), (2, COMPLETED)])


def test_a_failed_drain_attempt_stays_pending_with_its_error_and_is_retried(receiver):
    receiver.sim.inject("get_customer", "status", status=400, times=1)
    tenant = receiver.sim.accept_relationship()
    receiver.sim.wait_for_webhooks()
    sync_for = app.current().interactive_sync
    assert process_pending_events(app.current().settings, app.current().events, sync_for=sync_for) == {"processed": 0, "failed": 1, "pending": 1, "skipped": 0}
    [pending] = webhook_status(app.current().events, receiver.account_id)["pending"]
    assert pending["customerTenantId"] == tenant and pending["attempts"] == 1 and pending["lastError"]
    assert receiver.organization(tenant) is None

    assert process_pending_events(app.current().settings, app.current().events, sync_for=sync_for)["processed"] == 1
    assert receiver.organization(tenant)["Status"] == "active"


@pytest.mark.slow
def test_the_incremental_timer_drains_events_left_pending(receiver):
    from devstack.local.host import fire_timer

    tenant = receiver.sim.accept_relationship()
    receiver.sim.wait_for_webhooks()
    status = app.current().status.account(receiver.account_id)
    assert [e["customerTenantId"] for e in status["webhook_events"]["pending"]] == [tenant]

    fire_timer("incremental_sync")
    assert receiver.organization(tenant)["Status"] == "active"
    assert app.current().status.account(receiver.account_id)["webhook_events"]["pending"] == []
