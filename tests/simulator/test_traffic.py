"""Traffic the simulator imposes and observes: tokens, tracing headers, rate limit, faults, latency."""

from __future__ import annotations

import json
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.simulator.conftest import app_token, get, request_token


def test_a_missing_or_unknown_token_is_401_code_800001(simulator):
    for token in (None, "not-a-token"):
        response = get(simulator, "/v1/customers", token)
        assert response.status_code == 401
        assert response.json()["code"] == 800001
        assert response.json()["description"] == "Partner token missing or invalid"
    assert simulator.counters()["unauthorized"] == 2


def test_expired_tokens_are_refused_until_a_new_one_is_fetched(simulator, token):
    assert get(simulator, "/v1/customers", token).status_code == 200
    simulator.expire_tokens()
    response = get(simulator, "/v1/customers", token)
    assert response.status_code == 401 and response.json()["code"] == 800001
    assert get(simulator, "/v1/customers", app_token(simulator)).status_code == 200


def test_request_and_correlation_ids_are_echoed(simulator, token):
    sent = {
        "MS-RequestId": "6f1d1e06-8b0e-4a4a-9b1d-2f0c7c7a0a11",
        "MS-CorrelationId": "c0ffee00-0000-4000-8000-000000000001",
    }
    response = get(simulator, "/v1/customers", token, sent)
    assert response.headers["MS-RequestId"] == sent["MS-RequestId"]
    assert response.headers["MS-CorrelationId"] == sent["MS-CorrelationId"]
    assert response.headers["MS-CV"] and response.headers["MS-ServerId"]


def test_request_ids_are_generated_when_absent_even_on_errors(simulator):
    response = get(simulator, "/v1/customers", None)
    assert len(response.headers["MS-RequestId"]) == 36
    assert len(response.headers["MS-CorrelationId"]) == 36


def test_beyond_the_limit_requests_get_429_with_retry_after_and_the_throttle_shape(simulator, token):
    simulator.set_requests_per_minute(5)
    statuses = [get(simulator, "/v1/customers", token, size=1).status_code for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
    throttled = get(simulator, "/v1/customers", token)
    assert throttled.status_code == 429
    seconds = int(throttled.headers["Retry-After"])
    assert 55 <= seconds <= 60
    message = f"Rate limit is exceeded. Try again in {seconds} seconds."
    assert throttled.json() == {"statusCode": 429, "message": message}
    assert simulator.counters()["throttled"] == 3
    assert simulator.peak_requests(60) == 5


def test_the_limit_is_per_partner_tenant(simulator, token):
    simulator.set_requests_per_minute(2)
    other = simulator.add_partner(customers=3, requests_per_minute=None)
    other_token = app_token(simulator, other)
    assert [get(simulator, "/v1/customers", token).status_code for _ in range(3)] == [200, 200, 429]
    assert [get(simulator, "/v1/customers", other_token).status_code for _ in range(3)] == [200, 200, 200]
    assert simulator.peak_requests(60, other.tenant_id) == 3


def test_token_and_control_requests_are_not_limited(simulator):
    simulator.set_requests_per_minute(1)
    assert all(request_token(simulator).status_code == 200 for _ in range(3))
    assert all(requests.get(f"{simulator.url}/_simulator/counters", verify=simulator.ca_path).ok for _ in range(3))


def test_the_limit_is_a_sliding_window():
    from devstack.simulator.traffic import RequestBudget

    budget = RequestBudget()
    assert [budget.admit(at, 2) for at in (0.0, 10.0)] == [0.0, 0.0]
    assert budget.admit(30.0, 2) == pytest.approx(30.0)  # the request at 0 s frees its slot at 60 s
    assert budget.admit(60.0, 2) == 0.0
    assert budget.admit(61.0, 2) == pytest.approx(9.0)


def test_an_injected_status_has_the_documented_error_body_then_service_resumes(simulator, token):
    simulator.inject("list_customers", "status", status=503, times=2)
    responses = [get(simulator, "/v1/customers", token) for _ in range(3)]
    assert [r.status_code for r in responses] == [503, 503, 200]
    body = responses[0].json()
    assert body["code"] == 503 and body["source"] == "PartnerCenter" and body["description"]
    assert simulator.counters()["faults"] == 2
    assert [entry[3] for entry in simulator.request_log()] == [503, 503, 200]


def test_an_injected_429_has_the_throttle_shape_and_retry_after(simulator, token):
    simulator.inject("billing_profile", "status", status=429, retry_after=7)
    tenant = simulator.customers()[0]["id"]
    response = get(simulator, f"/v1/customers/{tenant}/profiles/billing", token)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json() == {"statusCode": 429, "message": "Rate limit is exceeded. Try again in 7 seconds."}


def test_a_dropped_connection_breaks_off_mid_body(simulator, token):
    simulator.inject("list_customers", "drop")
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        get(simulator, "/v1/customers", token)  # headers promised a Content-Length the body never reached
    assert get(simulator, "/v1/customers", token).status_code == 200


def test_a_malformed_body_is_200_but_not_json(simulator, token):
    simulator.inject("list_customers", "malformed")
    response = get(simulator, "/v1/customers", token)
    assert response.status_code == 200
    with pytest.raises(ValueError):
        json.loads(response.text)


def test_an_injected_body_is_served_as_given(simulator, token):
    page = {"totalCount": "three", "links": {}}
    simulator.inject("list_customers", "body", body=page)
    assert get(simulator, "/v1/customers", token).json() == page


def test_a_fault_for_one_customer_spares_the_others(simulator, token):
    first, second = (item["id"] for item in simulator.customers()[:2])
    simulator.inject("billing_profile", "status", status=500, tenant_id=first, times=5)
    assert get(simulator, f"/v1/customers/{second}/profiles/billing", token).status_code == 200
    assert get(simulator, f"/v1/customers/{first}/profiles/billing", token).status_code == 500


def test_a_wildcard_fault_hits_any_api_endpoint(simulator, token):
    simulator.inject("*", "status", status=502, times=2)
    tenant = simulator.customers()[0]["id"]
    assert get(simulator, f"/v1/customers/{tenant}", token).status_code == 502
    assert get(simulator, "/v1/customers", token).status_code == 502
    assert get(simulator, "/v1/customers", token).status_code == 200


def test_a_fault_for_another_partner_does_not_touch_the_default_one(simulator, token):
    other = simulator.add_partner(customers=2)
    simulator.inject("list_customers", "status", status=500, partner_tenant_id=other.tenant_id)
    assert get(simulator, "/v1/customers", token).status_code == 200
    assert get(simulator, "/v1/customers", app_token(simulator, other)).status_code == 500


def test_the_token_endpoint_can_fail_in_the_entra_shape(simulator):
    simulator.inject("token", "status", status=503)
    response = request_token(simulator)
    assert response.status_code == 503
    assert response.json()["error"] == "temporarily_unavailable"
    assert request_token(simulator).status_code == 200


def test_an_unknown_fault_is_refused(simulator):
    with pytest.raises(ValueError):
        simulator.inject("orders", "status")
    with pytest.raises(ValueError):
        simulator.inject("list_customers", "explode")


def test_latency_delays_api_answers_and_they_overlap(simulator, token):
    simulator.set_latency(0.4)
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        statuses = list(pool.map(lambda _: get(simulator, "/v1/customers", token).status_code, range(4)))
    elapsed = time.monotonic() - started
    assert statuses == [200] * 4
    assert 0.4 <= elapsed < 1.2  # four answers in about one delay, not four
    started = time.monotonic()
    requests.get(f"{simulator.url}/_simulator/counters", verify=simulator.ca_path, timeout=10)
    assert time.monotonic() - started < 0.3


def test_counters_count_requests_per_endpoint_and_reset(simulator, token):
    tenant = simulator.customers()[0]["id"]
    get(simulator, "/v1/customers", token)
    get(simulator, f"/v1/customers/{tenant}", token)
    get(simulator, f"/v1/customers/{tenant}/profiles/billing", token)
    counters = simulator.counters()
    assert counters["token"] == 1
    assert counters["list_customers"] == counters["get_customer"] == counters["billing_profile"] == 1
    assert counters["audit_records"] == counters["throttled"] == counters["faults"] == 0
    log = simulator.request_log()
    assert [(partner, endpoint, status) for _, partner, endpoint, status in log] == [
        (simulator.partner_tenant_id, "list_customers", 200),
        (simulator.partner_tenant_id, "get_customer", 200),
        (simulator.partner_tenant_id, "billing_profile", 200),
    ]
    simulator.reset_counters()
    assert set(simulator.counters().values()) == {0} and simulator.request_log() == []


def test_peak_requests_finds_the_busiest_window():
    from devstack.simulator.traffic import TrafficLog

    log = TrafficLog()
    for at, status in ((0.0, 200), (1.0, 200), (1.5, 429), (2.0, 200), (70.0, 200)):
        log.record(at, "p", "list_customers", status)
    assert log.peak(60.0, "p") == 3
    assert log.peak(1.5, "p") == 2


def test_a_client_that_connects_and_stays_silent_stalls_no_one(simulator, token):
    with socket.create_connection(("127.0.0.1", simulator.port)):
        started = time.monotonic()
        assert get(simulator, "/v1/customers", token).status_code == 200
        assert time.monotonic() - started < 1.0
