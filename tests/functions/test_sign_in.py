"""Every operator route, called as nobody, as a forged principal with App Service Authentication
off, as a principal without roles, as a reader and as an operator (docs/http-api.md#sign-in-and-roles).

The routes come from the real function index, so a new operator route without an entry here fails.
"""

from __future__ import annotations

import base64
import uuid

import pytest

from shared import app
from shared.functions.principal import OPERATOR, READER, encode
from devstack.local.host import call_http
from devstack.local.server import http_routes
from tests.functions.conftest import answer, http_request, is_problem

SIGNED_IN = "signed-in"  # ops/me: any signed-in principal, whatever its roles
# Every operator route and the role it needs (docs/http-api.md lists the same).
ROLES = {
    "whoami": SIGNED_IN,
    "sync_status_all": READER,
    "sync_status": READER,
    "get_organization": READER,
    "search_organizations": READER,
    "organization_changes": READER,
    "recent_runs": READER,
    "get_held_ending": READER,
    "list_held_endings": READER,
    "sync_now": OPERATOR,
    "sync_customer": OPERATOR,
    "exclude_organization": OPERATOR,
    "include_organization": OPERATOR,
    "approve_held_deletion": OPERATOR,
    "reject_held_deletion": OPERATOR,
}
OPERATOR_ROUTES = [route for route in http_routes() if route.route.startswith("ops/")]

NOBODY = None
NO_ROLES = encode("norole@example.com", str(uuid.uuid4()), [])
A_READER = encode("reader@example.com", str(uuid.uuid4()), [READER])
AN_OPERATOR = encode("operator@example.com", str(uuid.uuid4()), [OPERATOR])


def call(route, account: str, principal, tenant: str | None = None):
    params = {"accountId": account, "customerTenantId": tenant or str(uuid.uuid4()), "heldId": "0000000000000-absent"}
    wanted = {name: value for name, value in params.items() if "{" + name + "}" in route.route}
    query = {"q": "Contoso"} if route.function_name == "search_organizations" else None
    return call_http(route.function_name, http_request(route.methods[0], route.route, route_params=wanted,
                                                      params=query, principal=principal))


def test_every_operator_route_has_a_role():
    assert {route.function_name for route in OPERATOR_ROUTES} == set(ROLES)


@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=lambda r: r.function_name)
def test_without_a_principal_every_operator_route_is_a_401(configured, route):
    response = call(route, configured, NOBODY)
    assert response.status_code == 401 and is_problem(response)
    assert "/.auth/login/aad" in answer(response)["detail"]


@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=lambda r: r.function_name)
def test_a_forged_principal_without_app_service_authentication_is_a_401_naming_the_setup(
        configured, monkeypatch, route):
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    app.use(None)
    response = call(route, configured, AN_OPERATOR)
    assert response.status_code == 401 and is_problem(response)
    assert "WEBSITE_AUTH_ENABLED" in answer(response)["detail"]


@pytest.mark.parametrize("value", ["true", "TRUE", "False", "1", ""])
def test_only_website_auth_enabled_true_in_any_case_lets_a_principal_in(configured, monkeypatch, value):
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", value)
    app.use(None)
    response = call_http("sync_status", http_request("GET", "ops/x/status", route_params={"accountId": configured},
                                                     principal=A_READER))
    assert response.status_code == (200 if value.lower() == "true" else 401)


@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=lambda r: r.function_name)
def test_a_principal_without_roles_is_a_403_naming_the_role(configured, route):
    response = call(route, configured, NO_ROLES)
    if ROLES[route.function_name] == SIGNED_IN:
        assert response.status_code == 200 and answer(response)["roles"] == []
        return
    assert response.status_code == 403 and is_problem(response)
    assert ROLES[route.function_name] in answer(response)["detail"]


@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=lambda r: r.function_name)
def test_a_reader_reads_and_is_refused_every_action_naming_the_operator_role(configured, route):
    response = call(route, configured, A_READER)
    if ROLES[route.function_name] == OPERATOR:
        assert response.status_code == 403 and OPERATOR in answer(response)["detail"]
    else:
        assert response.status_code in (200, 404), answer(response)  # 404: the made-up ids
        assert response.status_code == 200 or "absent" in answer(response)["detail"] or "no organization" in \
            answer(response)["detail"]


@pytest.mark.parametrize("route", OPERATOR_ROUTES, ids=lambda r: r.function_name)
def test_an_operator_may_do_everything(with_partner_center, configured, unit_queue, seed, route):
    response = call(route, configured, AN_OPERATOR, tenant=seed())
    # 404 only for the made-up held id (the organization exists; Partner Center does not know it).
    assert response.status_code in (200, 202, 404), answer(response)
    if response.status_code == 404:
        assert route.function_name in ("approve_held_deletion", "reject_held_deletion", "get_held_ending",
                                       "sync_customer")


@pytest.mark.parametrize("header", ["not base64!", base64.b64encode(b"[1, 2]").decode(),
                                    base64.b64encode(b'{"claims": [{"typ": "roles"}]}').decode(),
                                    base64.b64encode(b'{"claims": []}').decode()])
def test_an_unreadable_principal_is_a_401(configured, header):
    response = call_http("sync_status_all", http_request("GET", "ops/status",
                                                         principal={"X-MS-CLIENT-PRINCIPAL": header}))
    assert response.status_code == 401 and is_problem(response)


def test_an_action_posted_from_another_site_is_refused(configured, seed):
    request = http_request("POST", "ops/x/exclude", route_params={"accountId": configured, "customerTenantId": seed()},
                           headers={"Origin": "https://evil.example", "Host": "sync.example"})
    response = call_http("exclude_organization", request)
    assert response.status_code == 403 and "another site" in answer(response)["detail"]


def test_an_action_from_the_consoles_own_page_is_accepted(configured, seed):
    request = http_request("POST", "ops/x/exclude", route_params={"accountId": configured, "customerTenantId": seed()},
                           headers={"Origin": "https://sync.example", "Host": "sync.example"})
    assert call_http("exclude_organization", request).status_code == 200
