"""Local runs export OTLP when the standard OTEL_* settings ask; telemetry settings are checked."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from bench.telemetry import _OtlpSink
from shared.settings import SettingsError, telemetry_settings
from shared.telemetry import names

ROOT = Path(__file__).resolve().parents[2]


def cli_env(simulator, storage_connection, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARTNER_CENTER", "OTEL_", "SYNC_",
                                                                       "APPLICATIONINSIGHTS_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "SYNC_STORAGE_CONNECTION": storage_connection,
        "PARTNER_CENTER_API_URL": simulator.url,
        "PARTNER_CENTER_AUTHORITY_URL": simulator.url,
        "PARTNER_CENTER_ACCOUNT_ID": "otlp-" + uuid.uuid4().hex[:8],
        "PARTNER_CENTER_TENANT_ID": simulator.partner_tenant_id,
        "PARTNER_CENTER_CLIENT_ID": simulator.client_id,
        "PARTNER_CENTER_CLIENT_SECRET": simulator.client_secret,
        "REQUESTS_CA_BUNDLE": simulator.ca_path,
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
        **extra,
    })
    return env


def run_cli(env: dict, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.telemetry.guarded_cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_a_command_line_run_exports_otlp_when_the_standard_endpoint_is_set(simulator, storage_connection, tmp_path):
    with _OtlpSink(keep_bodies=True) as sink:
        env = cli_env(simulator, storage_connection, OTEL_EXPORTER_OTLP_ENDPOINT=sink.url,
                      OTEL_SERVICE_NAME="pcsync-test")
        done = run_cli(env, tmp_path, "sync", "full")
    assert done.returncode == 0, done.stderr
    spans = [span for body in sink.bodies["traces"]
             for resource in ExportTraceServiceRequest.FromString(body).resource_spans
             for scope in resource.scope_spans for span in scope.spans]
    run = [s for s in spans if s.name == names.SPAN_RUN]
    assert len(run) == 1
    assert {a.key: a.value.string_value for a in run[0].attributes}[names.ACCOUNT] == env["PARTNER_CENTER_ACCOUNT_ID"]
    resource = ExportTraceServiceRequest.FromString(sink.bodies["traces"][0]).resource_spans[0].resource
    assert {a.key: a.value.string_value for a in resource.attributes}["service.name"] == "pcsync-test"
    metric_names = {m.name for body in sink.bodies["metrics"]
                    for resource in ExportMetricsServiceRequest.FromString(body).resource_metrics
                    for scope in resource.scope_metrics for m in scope.metrics}
    assert {names.ORGANIZATIONS_CREATED, names.PARTNER_CENTER_CALLS, names.RUN_DURATION} <= metric_names
    records = [r for body in sink.bodies["logs"] for resource in ExportLogsServiceRequest.FromString(body).resource_logs
               for scope in resource.scope_logs for r in scope.log_records]
    assert any("full run" in r.body.string_value for r in records)


def test_without_a_connection_string_or_endpoint_nothing_is_configured(simulator, storage_connection, tmp_path):
    probe = ("from shared import telemetry; from opentelemetry import trace; "
             "print(telemetry.configure(), type(trace.get_tracer_provider()).__name__)")
    env = cli_env(simulator, storage_connection)
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.stdout.split() == ["none", "ProxyTracerProvider"], done.stderr


def test_a_malformed_authentication_string_stops_the_command_naming_the_setting(simulator, storage_connection,
                                                                                 tmp_path):
    env = cli_env(simulator, storage_connection, APPLICATIONINSIGHTS_CONNECTION_STRING=(
        f"InstrumentationKey={uuid.uuid4()};IngestionEndpoint=https://127.0.0.1:9/"),
        APPLICATIONINSIGHTS_AUTHENTICATION_STRING="ClientId=abc")
    done = run_cli(env, tmp_path, "status")
    assert done.returncode == 2
    assert "APPLICATIONINSIGHTS_AUTHENTICATION_STRING" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("value, client_id", [("Authorization=AAD", ""),
                                              ("ClientId=6f1c;Authorization=AAD", "6f1c"),
                                              (" authorization=aad ; clientid=x ", "x")])
def test_the_authentication_string_names_the_identity(value, client_id):
    settings = telemetry_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": value})
    assert settings.uses_entra_id and settings.identity_client_id == client_id


def test_the_connection_string_is_not_shown_in_the_settings_repr():
    settings = telemetry_settings({"APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=secret-ikey"})
    assert "secret-ikey" not in repr(settings)


@pytest.mark.parametrize("value", ["ClientId=abc", "Authorization=Key", "garbage"])
def test_an_authentication_string_without_aad_is_refused(value):
    with pytest.raises(SettingsError, match="APPLICATIONINSIGHTS_AUTHENTICATION_STRING"):
        telemetry_settings({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": value})
