"""GET /api/console: the page for signed-in readers and operators, the sign-in for a browser
without a session, a strict Content-Security-Policy, and assets with no inline script or style."""

from __future__ import annotations

import re
import uuid

import pytest

from shared import app
from shared.functions.console import ASSETS, FOLDER
from shared.functions.principal import READER, encode
from devstack.local.host import call_http
from tests.functions.conftest import http_request, is_problem

A_READER = encode("reader@example.com", str(uuid.uuid4()), [READER])


def console(principal):
    return call_http("console", http_request("GET", "console", principal=principal))


def test_a_browser_without_a_session_is_sent_to_sign_in_and_back(configured):
    response = console(None)
    assert response.status_code == 302
    assert response.headers["Location"] == "/.auth/login/aad?post_login_redirect_uri=%2Fapi%2Fconsole"


def test_a_reader_gets_the_page_with_a_strict_policy(configured):
    response = console(A_READER)
    policy = response.headers["Content-Security-Policy"]
    assert response.status_code == 200 and response.mimetype == "text/html"
    assert "default-src 'none'" in policy and "script-src 'self'" in policy and "unsafe" not in policy


def test_a_principal_without_roles_is_a_403(configured):
    response = console(encode("nobody@example.com", str(uuid.uuid4()), []))
    assert response.status_code == 403 and is_problem(response)


def test_without_app_service_authentication_the_console_is_a_401(configured, monkeypatch):
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED")
    app.use(None)
    response = console(A_READER)
    assert response.status_code == 401 and "WEBSITE_AUTH_ENABLED" in response.get_body().decode()


@pytest.mark.parametrize("name", sorted(ASSETS))
def test_assets_are_served_with_their_types(configured, name):
    response = call_http("console_asset", http_request("GET", f"console/{name}", route_params={"asset": name}))
    assert response.status_code == 200 and response.mimetype == ASSETS[name]


def test_an_unknown_asset_is_a_404(configured):
    response = call_http("console_asset", http_request("GET", "console/x", route_params={"asset": "../app.py"}))
    assert response.status_code == 404 and is_problem(response)


def test_the_page_has_no_inline_script_or_style_and_the_script_never_writes_markup():
    page = (FOLDER / "index.html").read_text(encoding="utf-8")
    script = (FOLDER / "console.js").read_text(encoding="utf-8")
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and "<style" not in page and " style=" not in page
    assert not re.search(r"\bon[a-z]+=", page)
    assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(", script)
