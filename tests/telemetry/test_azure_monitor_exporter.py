"""Through the real Azure Monitor exporter: ``python -m shared sync full`` with a connection string
whose ingestion endpoint is a loopback HTTPS stub, authenticated with a managed identity whose
token endpoint is a loopback stub too (``IDENTITY_ENDPOINT``). The socket guard is on in the run."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from devstack.simulator.certificates import issue_server_certificate
from shared.telemetry import names

ROOT = Path(__file__).resolve().parents[2]
IDENTITY_HEADER = "identity-header-" + uuid.uuid4().hex
MANAGED_IDENTITY_TOKEN = "mi-token-" + uuid.uuid4().hex
CLIENT_ID = str(uuid.uuid4())


class IngestionStub:
    """Application Insights' track endpoint and an App Service managed identity endpoint."""

    def __init__(self, tmp_path: Path) -> None:
        self.envelopes: list[dict] = []
        self.authorizations: list[str] = []
        self.identity_requests: list[dict] = []
        certificate = issue_server_certificate(tmp_path / "ingestion", ["127.0.0.1"])
        self.ca_path = certificate.ca_path
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True,
                                   ssl_context=(str(certificate.cert_path), str(certificate.key_path)))
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @Request.application
    def app(self, request: Request) -> Response:
        if request.path.startswith("/msi/token"):
            self.identity_requests.append({"args": dict(request.args), "header": request.headers.get(
                "X-IDENTITY-HEADER")})
            return Response(json.dumps({"access_token": MANAGED_IDENTITY_TOKEN, "expires_on": "4102444800",
                                        "resource": request.args.get("resource"), "token_type": "Bearer"}),
                            content_type="application/json")
        if request.path.endswith("/track"):
            body = request.get_data()
            if request.headers.get("Content-Encoding") == "gzip" or body[:2] == b"\x1f\x8b":
                body = gzip.decompress(body)
            text = body.decode()
            items = json.loads(text) if text.lstrip().startswith("[") else [
                json.loads(line) for line in text.splitlines() if line.strip()]
            self.envelopes.extend(items)
            self.authorizations.append(request.headers.get("Authorization", ""))
            return Response(json.dumps({"itemsReceived": len(items), "itemsAccepted": len(items), "errors": []}),
                            content_type="application/json")
        return Response("not found", status=404)

    def __enter__(self) -> "IngestionStub":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    def of_type(self, base_type: str) -> list[dict]:
        return [e["data"]["baseData"] for e in self.envelopes if e.get("data", {}).get("baseType") == base_type]


@pytest.fixture
def ingestion(tmp_path):
    with IngestionStub(tmp_path) as stub:
        yield stub


@pytest.mark.slow
def test_a_command_line_run_sends_its_span_metrics_and_logs_to_application_insights(
        ingestion, simulator, storage_connection, table_prefix, tmp_path):
    bundle = tmp_path / "trust.pem"
    bundle.write_text(Path(simulator.ca_path).read_text() + Path(ingestion.ca_path).read_text())
    account_id = "ai-" + uuid.uuid4().hex[:8]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("PARTNER_CENTER", "OTEL_", "SYNC_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "SYNC_STORAGE_CONNECTION": storage_connection,
        "PARTNER_CENTER_API_URL": simulator.url,
        "PARTNER_CENTER_AUTHORITY_URL": simulator.url,
        "PARTNER_CENTER_ACCOUNT_ID": account_id,
        "PARTNER_CENTER_TENANT_ID": simulator.partner_tenant_id,
        "PARTNER_CENTER_CLIENT_ID": simulator.client_id,
        "PARTNER_CENTER_CLIENT_SECRET": simulator.client_secret,
        "REQUESTS_CA_BUNDLE": str(bundle),
        "APPLICATIONINSIGHTS_CONNECTION_STRING":
            f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint={ingestion.url}/",
        "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": f"ClientId={CLIENT_ID};Authorization=AAD",
        "IDENTITY_ENDPOINT": f"{ingestion.url}/msi/token",
        "IDENTITY_HEADER": IDENTITY_HEADER,
        # Nothing may probe beyond loopback: no statsbeat, no control plane, no cloud resource detectors.
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
    })
    done = subprocess.run([sys.executable, "-m", "tests.telemetry.guarded_cli", "sync", "full", "--json"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)[0]
    assert result["outcome"] == "succeeded"
    assert "loopback" not in done.stderr  # the guard refused nothing

    runs = [d for d in ingestion.of_type("RemoteDependencyData") if d["name"] == names.SPAN_RUN]
    assert len(runs) == 1
    assert runs[0]["properties"][names.RUN_ID] == result["runId"]
    assert runs[0]["properties"][names.ACCOUNT] == account_id
    calls = [d for d in ingestion.of_type("RemoteDependencyData") if names.REQUEST_ID in d.get("properties", {})]
    assert len(calls) == result["apiCalls"]
    metrics = {m["name"]: m["value"] for data in ingestion.of_type("MetricData") for m in data["metrics"]
               if data.get("properties", {}).get(names.ACCOUNT) == account_id}
    assert metrics[names.ORGANIZATIONS_CREATED] == result["counts"]["created"] == 25
    assert metrics[names.PARTNER_CENTER_CALLS] == result["apiCalls"]
    assert 0 <= metrics[names.SYNC_LAG] < 120  # the state gauges, read from the tables at the final flush
    assert metrics[names.WEBHOOK_EVENTS_PENDING] == metrics[names.WEBHOOK_EVENTS_FAILED] == 0
    logs = [m for m in ingestion.of_type("MessageData") if m.get("properties", {}).get(names.RUN_ID) == result["runId"]]
    assert logs and "full run" in logs[0]["message"]

    # Identity-based ingestion: every batch carried the managed identity's token.
    assert ingestion.identity_requests and ingestion.identity_requests[0]["header"] == IDENTITY_HEADER
    assert ingestion.identity_requests[0]["args"].get("client_id") == CLIENT_ID
    assert ingestion.authorizations and set(ingestion.authorizations) == {f"Bearer {MANAGED_IDENTITY_TOKEN}"}
    everything = json.dumps(ingestion.envelopes)
    assert simulator.client_secret not in everything and MANAGED_IDENTITY_TOKEN not in everything
