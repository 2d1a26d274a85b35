"""A managed identity that cannot get a token: one line naming the connection and the identity,
never a traceback or a secret; the HTTP routes answer 503 problem+json saying the same."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shared import app
from shared.store.connections import HOST_STORAGE

from .identity_endpoint import BrokenTokenEndpoint

ROOT = Path(__file__).resolve().parents[3]
# Unreachable on purpose: no token, so storage is never contacted.
TABLES = "https://127.0.0.1:9"
NOT_JSON_ANSWERS = [
    pytest.param(500, "text/html", b"<html><body>500 Internal Server Error</body></html>", id="500-html"),
    pytest.param(200, "text/plain", b"upstream says hello", id="200-not-json"),
    pytest.param(502, "text/html", b"", id="502-empty"),
]


def identity_storage_settings(client_id: str) -> dict[str, str]:
    return {f"{HOST_STORAGE}__tableServiceUri": TABLES, f"{HOST_STORAGE}__credential": "managedidentity",
            f"{HOST_STORAGE}__clientId": client_id}


@pytest.mark.slow
@pytest.mark.parametrize(("status", "content_type", "body"), NOT_JSON_ANSWERS)
def test_the_command_line_reports_a_token_failure_in_one_line_naming_the_connection(tmp_path, status, content_type,
                                                                                    body):
    client_id = str(uuid.uuid4())
    with BrokenTokenEndpoint(status, content_type, body) as endpoint:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
               **endpoint.environment, **identity_storage_settings(client_id),
               "PARTNER_CENTER_ACCOUNT_ID": "contoso", "PARTNER_CENTER_TENANT_ID": str(uuid.uuid4()),
               "PARTNER_CENTER_CLIENT_ID": str(uuid.uuid4()), "PARTNER_CENTER_CLIENT_SECRET": "pc-secret-value",
               "PARTNER_CENTER_API_URL": "https://127.0.0.1:9", "PARTNER_CENTER_AUTHORITY_URL": "https://127.0.0.1:9"}
        done = subprocess.run([sys.executable, "-m", "shared", "sync", "full"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert endpoint.calls >= 1
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0
    assert "Traceback" not in done.stderr and "JSONDecodeError" not in done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {HOST_STORAGE}: ")
    assert f"managed identity (client id {client_id})" in lines[0]
    assert endpoint.secret not in done.stderr + done.stdout and "pc-secret-value" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("status", "content_type", "body"), NOT_JSON_ANSWERS[:2])
def test_an_http_route_answers_a_token_failure_with_503_naming_the_connection(without_storage_settings, monkeypatch,
                                                                             status, content_type, body):
    from devstack.local.host import call_http
    from tests.functions.conftest import answer, http_request

    client_id = str(uuid.uuid4())  # a new identity: its credential is built against this endpoint
    with BrokenTokenEndpoint(status, content_type, body) as endpoint:
        # One account, so the route reads its tables.
        account = {"PARTNER_CENTER_ACCOUNT_ID": "contoso", "PARTNER_CENTER_TENANT_ID": str(uuid.uuid4()),
                   "PARTNER_CENTER_CLIENT_ID": str(uuid.uuid4()), "PARTNER_CENTER_CLIENT_SECRET": "pc-secret-value"}
        for name, value in {**endpoint.environment, **identity_storage_settings(client_id), **account}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
        app.use(None)
        try:
            response = call_http("sync_status_all", http_request("GET", "ops/status"))
        finally:
            app.use(None)
    problem = answer(response)
    assert response.status_code == 503 and response.mimetype == "application/problem+json"
    assert problem["type"].endswith(":credential-unavailable") and problem["status"] == 503
    assert problem["detail"].startswith(f"{HOST_STORAGE}: ")
    assert f"managed identity (client id {client_id})" in problem["detail"]
    assert endpoint.secret not in response.get_body().decode()


@pytest.mark.slow
def test_a_telemetry_token_failure_is_one_line_and_a_failed_command(tmp_path, storage_connection):
    # Storage answers (a connection string to Azurite); only Application Insights' identity fails.
    client_id = str(uuid.uuid4())
    with BrokenTokenEndpoint(500, "text/html", b"<html>down</html>") as endpoint:
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
               "PYTHONDONTWRITEBYTECODE": "1", **endpoint.environment,
               "SYNC_STORAGE_CONNECTION": storage_connection,
               # An account, so status reads tables: their spans are what telemetry must export.
               "PARTNER_CENTER_ACCOUNT_ID": "contoso", "PARTNER_CENTER_TENANT_ID": str(uuid.uuid4()),
               "PARTNER_CENTER_CLIENT_ID": str(uuid.uuid4()), "PARTNER_CENTER_CLIENT_SECRET": "pc-secret-value",
               "APPLICATIONINSIGHTS_CONNECTION_STRING":
                   "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/",
               "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={client_id};Authorization=AAD",
               "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
               "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
               "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel"}
        done = subprocess.run([sys.executable, "-m", "shared", "status"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert endpoint.calls >= 1
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert lines[0].startswith("error: APPLICATIONINSIGHTS: ")
    assert f"managed identity (client id {client_id})" in lines[0]
    assert "account contoso" in done.stdout  # the status itself was shown
    assert endpoint.secret not in done.stderr + done.stdout and "pc-secret-value" not in done.stderr
