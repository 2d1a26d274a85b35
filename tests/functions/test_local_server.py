"""The local server: the registered HTTP functions over a real loopback socket, as `func start` would."""

from __future__ import annotations

import json
import uuid

import pytest
import requests

from devstack.local.easyauth import LocalOperator
from devstack.local.server import LocalServer, http_routes
from shared.functions.principal import OPERATOR, READER, encode

PROBLEM = "application/problem+json"


@pytest.fixture
def server(configured):
    with LocalServer(operator=LocalOperator()) as running:
        yield running


def signed_in(server: LocalServer) -> requests.Session:
    """A browser that went through the stand-in's /.auth/login/aad: it holds the session cookie."""
    browser = requests.Session()
    browser.get(f"{server.url}/.auth/login/aad", timeout=10)
    return browser


def test_every_http_function_is_routed_under_the_api_prefix(server):
    assert {r.function_name for r in http_routes()} >= {"validate_contact_edit", "sync_now", "get_organization"}
    assert all(r.pattern.fullmatch(f"/api/{r.route.replace('{', '').replace('}', '')}") for r in http_routes())


def test_a_denied_edit_over_http(server, seed):
    tenant = seed()
    response = requests.post(f"{server.url}/api/contacts/validate", timeout=10,
                             json={"customerTenantId": tenant, "billingContact": {"email": "someone@else.com"}})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["allowed"] is False and body["microsoftCustomer"] is True
    assert {v["code"] for v in body["violations"]} == {"CONTACT_MANAGED_IN_PARTNER_CENTER", "BILLING_MUST_MATCH_PRIMARY"}


def test_malformed_json_over_http_is_a_problem(server):
    response = requests.post(f"{server.url}/api/contacts/validate", data=b"{oops", timeout=10)
    assert response.status_code == 400 and response.headers["Content-Type"].startswith(PROBLEM)
    assert response.json()["status"] == 400


def test_an_oversize_body_over_http_is_a_413(server):
    body = json.dumps({"customerTenantId": str(uuid.uuid4()), "primaryContact": {"city": "x" * 70_000}})
    response = requests.post(f"{server.url}/api/contacts/validate", data=body, timeout=10)
    assert response.status_code == 413 and response.headers["Content-Type"].startswith(PROBLEM)


def test_a_body_beyond_the_servers_cap_is_refused_before_it_is_read(server):
    response = requests.post(f"{server.url}/api/contacts/validate", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert response.status_code == 413 and response.headers["Content-Type"].startswith(PROBLEM)


def test_route_parameters_reach_the_function(server, seed, configured):
    tenant = seed()
    response = signed_in(server).get(f"{server.url}/api/ops/accounts/{configured}/organizations/{tenant}", timeout=10)
    assert response.status_code == 200 and response.json()["customerTenantId"] == tenant


def test_an_unknown_route_is_a_404_problem(server):
    response = requests.get(f"{server.url}/api/nothing/here", timeout=10)
    assert response.status_code == 404 and response.headers["Content-Type"].startswith(PROBLEM)


def test_a_wrong_method_is_a_405_problem_with_allow(server):
    response = requests.get(f"{server.url}/api/contacts/validate", timeout=10)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert response.headers["Content-Type"].startswith(PROBLEM)


def test_the_cool_down_over_http_answers_429_with_retry_after(server, configured, stores):
    stores.state.record_manual_request(configured)
    response = signed_in(server).post(f"{server.url}/api/ops/accounts/{configured}/sync", timeout=10)
    assert response.status_code == 429 and int(response.headers["Retry-After"]) > 0
    assert response.headers["Content-Type"].startswith(PROBLEM)


def test_keys_are_not_checked_locally(server):
    response = requests.post(f"{server.url}/api/contacts/validate", json={"customerTenantId": str(uuid.uuid4())},
                             timeout=10)
    assert response.status_code == 200


# -- the stand-in for App Service Authentication --------------------------------------------------

def test_signing_in_sets_the_session_and_returns_to_the_page(server):
    response = requests.get(f"{server.url}/.auth/login/aad?post_login_redirect_uri=%2Fapi%2Fconsole",
                            allow_redirects=False, timeout=10)
    assert response.status_code == 302 and response.headers["Location"] == "/api/console"
    assert "AppServiceAuthSession" in response.cookies


def test_sign_in_never_redirects_to_another_site(server):
    response = requests.get(f"{server.url}/.auth/login/aad?post_login_redirect_uri=//evil.example/",
                            allow_redirects=False, timeout=10)
    assert response.headers["Location"] == "/"


def test_the_console_sends_a_browser_without_a_session_to_sign_in_and_back(server):
    browser = requests.Session()
    first = browser.get(f"{server.url}/api/console", allow_redirects=False, timeout=10)
    assert first.status_code == 302 and first.headers["Location"].startswith("/.auth/login/aad")
    page = browser.get(f"{server.url}/api/console", timeout=10)  # follows sign-in and comes back
    assert page.status_code == 200 and page.url.endswith("/api/console") and "<html" in page.text


def test_a_principal_a_caller_sends_is_stripped(server):
    forged = encode("intruder@example.com", str(uuid.uuid4()), [OPERATOR])
    response = requests.get(f"{server.url}/api/ops/status", headers=forged, timeout=10)
    assert response.status_code == 401 and response.headers["Content-Type"].startswith(PROBLEM)


def test_the_signed_in_operator_is_the_one_the_server_was_started_with(server):
    me = signed_in(server).get(f"{server.url}/api/ops/me", timeout=10).json()
    assert (me["name"], me["objectId"], me["roles"]) == (server.operator.name, server.operator.object_id, [OPERATOR])


def test_a_server_started_with_the_reader_role_signs_in_a_reader(configured):
    with LocalServer(operator=LocalOperator(name="reader@localhost", roles=(READER,))) as reader_server:
        browser = signed_in(reader_server)
        assert browser.get(f"{reader_server.url}/api/ops/status", timeout=10).status_code == 200
        refused = browser.post(f"{reader_server.url}/api/ops/accounts/{configured}/sync", timeout=10)
        assert refused.status_code == 403 and OPERATOR in refused.json()["detail"]
