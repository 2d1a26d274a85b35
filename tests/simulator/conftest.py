"""Helpers for talking to the simulator the way a client does: real HTTPS, real tokens, next links."""

from __future__ import annotations

from typing import Any

import pytest
import requests

APP_ONLY_SCOPE = "https://api.partnercenter.microsoft.com/.default"
USER_IMPERSONATION_SCOPE = "https://api.partnercenter.microsoft.com/user_impersonation"


def request_token(sim, partner=None, **form: str) -> requests.Response:
    """POST a client-credentials token request for a partner (the default one unless given)."""
    tenant = partner.tenant_id if partner else sim.partner_tenant_id
    body = {
        "grant_type": "client_credentials",
        "client_id": partner.client_id if partner else sim.client_id,
        "client_secret": partner.client_secret if partner else sim.client_secret,
        "scope": APP_ONLY_SCOPE,
    }
    body.update(form)
    # verify= on the request itself: the environment's REQUESTS_CA_BUNDLE would override Session.verify.
    return requests.post(f"{sim.url}/{tenant}/oauth2/v2.0/token", data=body, verify=sim.ca_path, timeout=10)


def app_token(sim, partner=None) -> str:
    """An app-only access token."""
    response = request_token(sim, partner)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def app_user_token(sim, partner=None) -> str:
    """An app+user access token, redeemed from a refresh token the simulator issued."""
    response = request_token(
        sim, partner,
        grant_type="refresh_token",
        refresh_token=sim.issue_refresh_token(partner.tenant_id if partner else None),
        scope=USER_IMPERSONATION_SCOPE,
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def get(sim, path: str, token: str | None, headers: dict[str, str] | None = None, **params: Any) -> requests.Response:
    """GET an API path (relative to the base URL) with a bearer token."""
    sent = {"Accept": "application/json"}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    sent.update(headers or {})
    return requests.get(f"{sim.url}{path}", headers=sent, params=params or None, verify=sim.ca_path, timeout=10)


def control(sim, method: str, path: str, body: Any = None, **params: Any) -> requests.Response:
    """Call a `/_simulator` control route."""
    return requests.request(
        method, f"{sim.url}/_simulator{path}", json=body, params=params or None, verify=sim.ca_path, timeout=10
    )


def walk(sim, token: str, first: str, between_pages=None, **params: Any) -> list[dict[str, Any]]:
    """Every page of a collection, following `links.next` exactly as served (uri and headers)."""
    pages = [_ok(get(sim, first, token, **params))]
    while "next" in pages[-1]["links"]:
        if between_pages:
            between_pages(len(pages))
        link = pages[-1]["links"]["next"]
        headers = {header["key"]: header["value"] for header in link["headers"]}
        pages.append(_ok(get(sim, link["uri"], token, headers)))
        assert len(pages) < 1000, "the walk does not end"
    return pages


def _ok(response: requests.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
def token(simulator) -> str:
    """An app-only token of the default partner."""
    return app_token(simulator)
