"""The scenario controls over HTTP, as the CLI or another process scripts them."""

from __future__ import annotations

import time

from tests.simulator.conftest import app_token, control, get


def test_the_summary_says_how_to_reach_the_simulator(simulator):
    summary = control(simulator, "GET", "").json()
    assert summary["apiUrl"] == summary["authorityUrl"] == simulator.url
    assert summary["partnerTenantId"] == simulator.partner_tenant_id
    assert summary["partners"][0]["clientId"] == simulator.client_id


def test_a_customer_accepted_over_http_joins_the_end_of_the_list(simulator):
    response = control(simulator, "POST", "/customers", {
        "companyName": "Wingtip Toys GmbH", "domain": "wingtiptoys77.onmicrosoft.com",
        "billingProfile": {"email": "billing@wingtip.example", "defaultAddress": {"country": "DE"}},
    })
    assert response.status_code == 201
    tenant = response.json()["tenantId"]
    listed = control(simulator, "GET", "/customers").json()
    assert listed[-1]["id"] == tenant
    assert listed[-1]["companyProfile"]["companyName"] == "Wingtip Toys GmbH"
    profile = control(simulator, "GET", f"/customers/{tenant}/billing-profile").json()
    assert profile["email"] == "billing@wingtip.example" and profile["defaultAddress"]["country"] == "DE"


def test_billing_profile_changes_rename_and_removal_over_http(simulator):
    tenant = simulator.customers()[0]["id"]
    patched = control(simulator, "PATCH", f"/customers/{tenant}/billing-profile",
                      {"email": None, "defaultAddress": {"city": "Köln"}})
    assert patched.status_code == 200
    assert "email" not in patched.json() and patched.json()["defaultAddress"]["city"] == "Köln"
    assert control(simulator, "PATCH", f"/customers/{tenant}", {"companyName": "Köln AG"}).status_code == 200
    assert simulator.customers()[0]["companyProfile"]["companyName"] == "Köln AG"
    assert control(simulator, "DELETE", f"/customers/{tenant}").status_code == 204
    assert get(simulator, f"/v1/customers/{tenant}", app_token(simulator)).json()["code"] == 20002


def test_faults_counters_and_token_expiry_over_http(simulator):
    token = app_token(simulator)
    fault = {"endpoint": "list_customers", "kind": "status", "status": 500}
    assert control(simulator, "POST", "/faults", fault).status_code == 201
    assert get(simulator, "/v1/customers", token).status_code == 500
    counters = control(simulator, "GET", "/counters").json()
    assert counters["list_customers"] == 1 and counters["faults"] == 1 and counters["token"] == 1
    assert control(simulator, "POST", "/expire-tokens").status_code == 204
    assert get(simulator, "/v1/customers", token).status_code == 401
    log = control(simulator, "GET", "/request-log").json()
    assert [entry["status"] for entry in log] == [500, 401]
    assert control(simulator, "GET", "/peak-requests", windowSeconds=60).json() == {"peakRequests": 1}
    assert control(simulator, "DELETE", "/counters").status_code == 204
    assert set(control(simulator, "GET", "/counters").json().values()) == {0}


def test_pending_faults_can_be_cleared(simulator):
    control(simulator, "POST", "/faults", {"endpoint": "*", "kind": "drop", "times": 3})
    assert control(simulator, "DELETE", "/faults").status_code == 204
    assert get(simulator, "/v1/customers", app_token(simulator)).status_code == 200


def test_settings_change_latency_limit_and_next_link_form(simulator):
    settings = control(simulator, "PATCH", "/settings",
                       {"latency": 0.2, "nextLinkForm": "bare", "requestsPerMinute": 100}).json()
    assert settings["latency"] == 0.2 and settings["nextLinkForm"] == "bare"
    assert settings["requestsPerMinute"][simulator.partner_tenant_id] == 100
    token = app_token(simulator)
    started = time.monotonic()
    page = get(simulator, "/v1/customers", token, size=5).json()
    assert time.monotonic() - started >= 0.2
    assert page["links"]["next"]["uri"].startswith("/customers?")


def test_partners_and_refresh_tokens_over_http(simulator):
    partner = control(simulator, "POST", "/partners", {"customers": 4, "resellers": 2}).json()
    assert len(partner["resellerIds"]) == 2
    listed = control(simulator, "GET", "/customers", partnerTenantId=partner["tenantId"]).json()
    assert len(listed) == 4
    refresh = control(simulator, "POST", "/refresh-tokens", {"partnerTenantId": partner["tenantId"]}).json()
    assert refresh["refreshToken"]


def test_control_requests_are_not_counted_limited_or_delayed(simulator):
    simulator.set_requests_per_minute(1)
    simulator.set_latency(1.0)
    started = time.monotonic()
    for _ in range(5):
        assert control(simulator, "GET", "/counters").status_code == 200
    assert time.monotonic() - started < 1.0
    assert simulator.request_log() == []


def test_bad_control_requests_are_400_and_unknown_customers_404(simulator):
    assert control(simulator, "POST", "/faults", {"endpoint": "list_customers"}).status_code == 400
    assert control(simulator, "POST", "/faults", {"endpoint": "nowhere", "kind": "drop"}).status_code == 400
    assert control(simulator, "PATCH", "/settings", {"nextLinkForm": "v2"}).status_code == 400
    response = control(simulator, "PATCH", f"/customers/{simulator.customers()[0]['id']}/billing-profile", ["x"])
    assert response.status_code == 400
    assert control(simulator, "POST", "/customers", {"billingProfile": "Contoso"}).status_code == 400
    assert control(simulator, "DELETE", "/customers/00000000-0000-4000-8000-000000000002").status_code == 404
    assert control(simulator, "DELETE", "/customers/not-a-guid").status_code == 400
    stranger = "00000000-0000-4000-8000-000000000003"
    assert control(simulator, "GET", "/customers", partnerTenantId=stranger).status_code == 404


def test_the_2026_controls_over_http(simulator):
    partner = control(simulator, "POST", "/partners", {"customers": 3, "resellers": 2, "otherRelationships": 4}).json()
    listed = control(simulator, "GET", "/customers", partnerTenantId=partner["tenantId"]).json()
    assert len(listed) == 7 and sum(c["relationshipToPartner"] == "reseller" for c in listed) == 3
    settings = control(simulator, "PATCH", "/settings", {
        "cloud": "china", "noResellerAnswer": "empty", "relationshipPageSize": 1,
        "tokensWithoutMfa": True, "partnerTenantId": partner["tenantId"],
    }).json()
    assert settings["cloud"] == "china" and settings["noResellerAnswer"] == "empty"
    assert settings["relationshipPageSize"] == 1 and settings["tokensWithoutMfa"][partner["tenantId"]] is True
    assert get(simulator, "/v1/customers", app_token(simulator)).json()["code"] == 800001  # public audience
    control(simulator, "PATCH", "/settings", {"cloud": "public", "relationshipPageSize": None,
                                             "noResellerAnswer": "null"})
    tenant = simulator.customers()[0]["id"]
    changed = control(simulator, "PATCH", f"/customers/{tenant}", {"relationshipToPartner": "advisor"})
    assert changed.json() == {"tenantId": tenant, "relationshipToPartner": "advisor"}
    assert simulator.customers()[0]["relationshipToPartner"] == "advisor"
    fault = {"endpoint": "list_customers", "kind": "status", "status": 429, "retryAfterForm": "none"}
    assert control(simulator, "POST", "/faults", fault).status_code == 201
    throttled = get(simulator, "/v1/customers", app_token(simulator))
    assert throttled.status_code == 429 and "Retry-After" not in throttled.headers
    assert control(simulator, "POST", "/faults", {"endpoint": "list_customers", "kind": "no_content"}).status_code == 201
    assert get(simulator, "/v1/customers", app_token(simulator)).status_code == 204


def test_bad_2026_control_values_are_400(simulator):
    for body in ({"cloud": "mooncake"}, {"noResellerAnswer": "maybe"}, {"relationshipPageSize": 0},
                 {"tokensWithoutMfa": "yes"}):
        assert control(simulator, "PATCH", "/settings", body).status_code == 400, body
    fault = {"endpoint": "list_customers", "kind": "status", "status": 429, "retryAfterForm": "fortnight"}
    assert control(simulator, "POST", "/faults", fault).status_code == 400
    tenant = simulator.customers()[0]["id"]
    assert control(simulator, "PATCH", f"/customers/{tenant}", {"relationshipToPartner": ""}).status_code == 400
    assert control(simulator, "PATCH", "/resellers/7d0fc6c4-2d59-4bd4-8f37-0a4b4ef9b6e3", {"state": "Active"}).status_code == 404
