"""Simulated webhooks: the registration API, signed delivery with retries, and the bad-event controls."""

from __future__ import annotations

import base64
import json
import threading

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from tests.simulator.conftest import control


class Receiver:
    """A plain HTTP receiver on loopback that fails the first ``failures`` deliveries."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[tuple[dict, bytes]] = []
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/events"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def _app(self, environ, start_response):
        request = Request(environ)
        self.received.append((dict(request.headers), request.get_data()))
        status = 503 if len(self.received) <= self.failures else 200
        return Response("{}", status=status, content_type="application/json")(environ, start_response)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver():
    started = Receiver()
    yield started
    started.close()


def api(sim, token: str, method: str, path: str = "", body=None) -> requests.Response:
    return requests.request(method, f"{sim.url}/webhooks/v1/registration{path}", json=body, verify=sim.ca_path,
                            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"}, timeout=10)


def test_a_registration_is_created_once_then_updated(simulator, token):
    body = {"WebhookUrl": "https://receiver.example/events", "WebhookEvents": ["test-created"]}
    assert api(simulator, token, "GET").status_code == 404
    assert api(simulator, token, "PUT", body=body).status_code == 404
    created = api(simulator, token, "POST", body=body)
    assert created.status_code == 200 and created.json()["SubscriberId"]
    assert api(simulator, token, "POST", body=body).status_code == 409
    body["WebhookEvents"] = ["reseller-relationship-accepted-by-customer"]
    assert api(simulator, token, "PUT", body=body).json()["WebhookEvents"] == body["WebhookEvents"]
    assert api(simulator, token, "GET").json()["WebhookUrl"] == body["WebhookUrl"]


@pytest.mark.parametrize("body", [
    {"WebhookUrl": "ftp://x", "WebhookEvents": ["test-created"]},
    {"WebhookUrl": "https://x.example", "WebhookEvents": []},
    {"WebhookUrl": "https://x.example", "WebhookEvents": ["no-such-event"]},
    ["not", "an", "object"],
])
def test_a_bad_registration_is_a_400(simulator, token, body):
    answer = api(simulator, token, "POST", body=body)
    assert answer.status_code == 400 and answer.json()["description"]


def test_the_registration_api_needs_a_token(simulator):
    assert api(simulator, "not-a-token", "GET").status_code == 401


def test_the_event_list_names_the_relationship_events(simulator, token):
    names = api(simulator, token, "GET", "/events").json()
    assert {"reseller-relationship-accepted-by-customer", "indirect-reseller-relationship-accepted-by-customer",
            "test-created"} <= set(names)


def test_an_accepted_relationship_is_delivered_signed_with_the_served_certificate(simulator, receiver):
    simulator.register_webhook(receiver.url)
    tenant = simulator.accept_relationship()
    assert simulator.wait_for_webhooks(10)
    (headers, body), = receiver.received
    event = json.loads(body)
    assert event["EventName"] == "reseller-relationship-accepted-by-customer"
    assert event["ResourceUri"] == f"{simulator.url}/v1/customers/{tenant}"
    assert headers["X-Ms-Signature-Algorithm"] == "rsa-sha256"
    der = requests.get(headers["X-Ms-Certificate-Url"], verify=simulator.ca_path, timeout=10).content
    scheme, signature = headers["Authorization"].split(" ", 1)
    assert scheme == "Signature"
    x509.load_der_x509_certificate(der).public_key().verify(
        base64.b64decode(signature), body, padding.PKCS1v15(), hashes.SHA256())


def test_a_relationship_not_registered_for_is_not_delivered(simulator, receiver):
    simulator.register_webhook(receiver.url, ["test-created"])
    simulator.accept_relationship()
    assert simulator.wait_for_webhooks(10) and receiver.received == []


def test_a_failed_delivery_is_retried_until_it_succeeds(simulator):
    flaky = Receiver(failures=2)
    try:
        simulator.set_webhook_delivery(attempts=5, backoff=0.01)
        simulator.register_webhook(flaky.url)
        simulator.accept_relationship()
        assert simulator.wait_for_webhooks(10)
        assert [d.status for d in simulator.webhook_deliveries()] == [503, 503, 200]
        assert len({body for _, body in flaky.received}) == 1  # the same event each time
    finally:
        flaky.close()


def test_delivery_gives_up_after_the_configured_attempts(simulator):
    down = Receiver(failures=100)
    try:
        simulator.set_webhook_delivery(attempts=3, backoff=0.01)
        simulator.register_webhook(down.url)
        simulator.accept_relationship()
        assert simulator.wait_for_webhooks(10)
        assert [d.attempt for d in simulator.webhook_deliveries()] == [1, 2, 3]
    finally:
        down.close()


def test_a_validation_event_reports_each_attempt(simulator, receiver, token):
    simulator.register_webhook(receiver.url)
    correlation_id = api(simulator, token, "POST", "/validationEvents").json()["correlationId"]
    assert simulator.wait_for_webhooks(10)
    status = api(simulator, token, "GET", f"/validationEvents/{correlation_id}").json()
    assert status["status"] == "completed" and status["results"][0]["responseCode"] == "200"
    assert json.loads(receiver.received[0][1])["EventName"] == "test-created"


def test_bad_events_and_replays_can_be_sent_over_http_controls(simulator, receiver):
    simulator.register_webhook(receiver.url)
    tampered = control(simulator, "POST", "/webhooks/events", {"variant": "tampered"}).json()
    assert tampered["variant"] == "tampered" and tampered["status"] == 200
    replayed = control(simulator, "POST", "/webhooks/replay", {}).json()
    assert replayed["variant"] == "replayed"
    assert receiver.received[0][1] == receiver.received[1][1]
    assert [d["variant"] for d in control(simulator, "GET", "/webhooks/deliveries").json()] == ["tampered", "replayed"]
    assert control(simulator, "POST", "/webhooks/events", {"variant": "nonsense"}).status_code == 400
