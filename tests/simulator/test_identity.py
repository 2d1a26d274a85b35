"""Entra ID as the simulator serves it: discovery, client credentials, rotating refresh tokens."""

from __future__ import annotations

import time

import msal
import pytest
import requests

from tests.simulator.conftest import (
    APP_ONLY_SCOPE,
    USER_IMPERSONATION_SCOPE,
    app_token,
    app_user_token,
    get,
    request_token,
)


@pytest.fixture
def trusted(simulator, monkeypatch):
    """MSAL trusts the simulator the standard way: REQUESTS_CA_BUNDLE."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_path)
    return simulator


def _msal_app(sim, secret=None):
    return msal.ConfidentialClientApplication(
        sim.client_id,
        client_credential=secret or sim.client_secret,
        authority=f"{sim.url}/{sim.partner_tenant_id}",
        instance_discovery=False,
    )


def test_msal_gets_an_app_only_token_that_the_api_accepts(trusted):
    result = _msal_app(trusted).acquire_token_for_client(scopes=[APP_ONLY_SCOPE])
    assert result["token_type"] == "Bearer"
    assert result["expires_in"] == 3600
    assert get(trusted, "/v1/customers", result["access_token"]).status_code == 200
    assert trusted.counters()["token"] == 1
    assert trusted.counters()["openid_configuration"] == 1


def test_msal_reports_a_wrong_secret_as_an_aad_error(trusted):
    result = _msal_app(trusted, secret="not-the-secret").acquire_token_for_client(scopes=[APP_ONLY_SCOPE])
    assert "access_token" not in result
    assert result["error"] == "invalid_client"
    assert result["error_description"].startswith("AADSTS7000215")


def test_the_token_response_has_the_entra_shape(simulator):
    response = request_token(simulator)
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"token_type", "expires_in", "ext_expires_in", "access_token"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == body["ext_expires_in"] == 3600


def test_client_secret_in_http_basic_authentication_is_accepted(simulator):
    response = requests.post(
        f"{simulator.url}/{simulator.partner_tenant_id}/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "scope": APP_ONLY_SCOPE},
        auth=(simulator.client_id, simulator.client_secret),
        verify=simulator.ca_path,
        timeout=10,
    )
    assert response.status_code == 200, response.text


def test_an_unknown_client_is_an_aad_error(simulator):
    response = request_token(simulator, client_id="11111111-2222-4333-8444-555555555555")
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert "AADSTS700016" in response.json()["error_description"]


def test_another_partners_app_cannot_sign_in_to_this_tenant(simulator):
    other = simulator.add_partner()
    response = request_token(simulator, client_id=other.client_id, client_secret=other.client_secret)
    assert response.status_code == 400
    assert "AADSTS700016" in response.json()["error_description"]


def test_an_unknown_tenant_is_an_aad_error(simulator):
    response = requests.post(
        f"{simulator.url}/00000000-0000-4000-8000-000000000000/oauth2/v2.0/token",
        data={"grant_type": "client_credentials", "client_id": simulator.client_id,
              "client_secret": simulator.client_secret, "scope": APP_ONLY_SCOPE},
        verify=simulator.ca_path,
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_tenant"
    assert "AADSTS90002" in response.json()["error_description"]


def test_a_token_of_the_retired_graph_audience_is_refused_by_partner_center_with_900420(simulator):
    # Entra still issues it; Partner Center no longer accepts that audience.
    response = request_token(simulator, scope="https://graph.windows.net/.default")
    assert response.status_code == 200
    refused = get(simulator, "/v1/customers", response.json()["access_token"])
    assert refused.status_code == 401
    assert refused.json()["code"] == 900420
    assert "https://graph.windows.net" in refused.json()["description"]


def test_an_unknown_resource_is_refused_by_entra(simulator):
    response = request_token(simulator, scope="https://management.azure.com/.default")
    assert response.status_code == 400
    assert "AADSTS500011" in response.json()["error_description"]


def test_discovery_points_every_endpoint_at_the_simulator(simulator):
    response = requests.get(
        f"{simulator.url}/{simulator.partner_tenant_id}/v2.0/.well-known/openid-configuration",
        verify=simulator.ca_path,
        timeout=10,
    )
    config = response.json()
    authority = f"{simulator.url}/{simulator.partner_tenant_id}"
    assert config["issuer"] == f"{authority}/v2.0"
    assert config["token_endpoint"] == f"{authority}/oauth2/v2.0/token"
    assert config["authorization_endpoint"] == f"{authority}/oauth2/v2.0/authorize"
    assert config["jwks_uri"].startswith(simulator.url)


def test_msal_redeems_a_refresh_token_and_gets_a_new_one_each_time(trusted):
    app = _msal_app(trusted)
    first = trusted.issue_refresh_token()
    result = app.acquire_token_by_refresh_token(first, scopes=[USER_IMPERSONATION_SCOPE])
    assert "access_token" in result, result
    second = result["refresh_token"]
    assert second != first

    reused = app.acquire_token_by_refresh_token(first, scopes=[USER_IMPERSONATION_SCOPE])
    assert reused["error"] == "invalid_grant"
    assert "AADSTS700082" in reused["error_description"]
    assert "access_token" in app.acquire_token_by_refresh_token(second, scopes=[USER_IMPERSONATION_SCOPE])


def test_an_unknown_refresh_token_is_invalid_grant(simulator):
    response = request_token(simulator, grant_type="refresh_token", refresh_token="0.Anot-a-token",
                             scope=USER_IMPERSONATION_SCOPE)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "AADSTS700082" in response.json()["error_description"]


def test_a_refresh_token_works_only_for_its_own_partner(simulator):
    other = simulator.add_partner()
    response = request_token(simulator, other, grant_type="refresh_token",
                             refresh_token=simulator.issue_refresh_token(), scope=USER_IMPERSONATION_SCOPE)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_app_only_tokens_cannot_use_app_user_endpoints(simulator):
    response = get(simulator, "/v1/relationships", app_token(simulator),
                   relationship_type="IsIndirectCloudSolutionProviderOf")
    assert response.status_code == 403
    assert get(simulator, "/v1/relationships", app_user_token(simulator),
               relationship_type="IsIndirectCloudSolutionProviderOf").status_code == 200


def test_a_token_stops_working_when_its_lifetime_ends(tmp_path):
    from devstack.simulator import PartnerCenterSimulator

    with PartnerCenterSimulator(customers=1, token_lifetime=1, state_dir=tmp_path) as sim:
        response = request_token(sim)
        assert response.json()["expires_in"] == 1
        token = response.json()["access_token"]
        assert get(sim, "/v1/customers", token).status_code == 200
        time.sleep(1.1)
        assert get(sim, "/v1/customers", token).status_code == 401
