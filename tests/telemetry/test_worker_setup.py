"""In Azure the Python worker configures Azure Monitor before it indexes function_app.py; our
import then adds the Partner Center hooks to the worker's providers, and no second exporter or
log handler (which would duplicate every log line)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WORKER = """
import json, logging, socket
from tests import conftest
# The session's loopback-only guard, in this process too.
socket.socket.connect, socket.getaddrinfo = conftest._guarded_connect, conftest._guarded_getaddrinfo
from azure.monitor.opentelemetry import configure_azure_monitor
from opentelemetry import trace
# What the worker does when PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true, before indexing.
configure_azure_monitor(enable_live_metrics=False)
provider = trace.get_tracer_provider()
import function_app  # noqa: F401
import requests
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shared.telemetry import exporter_mode
spans = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(spans))
try:
    requests.get("http://127.0.0.1:9/v1/customers", headers={"MS-RequestId": "r-1", "MS-CorrelationId": "c-1"},
                 timeout=2)
except requests.RequestException:
    pass
print(json.dumps({
    "same_provider": trace.get_tracer_provider() is provider,
    "configured_by_us": exporter_mode(),
    "root_handlers": [type(h).__name__ for h in logging.getLogger().handlers],
    "calls": [dict(s.attributes) for s in spans.get_finished_spans()],
}))
"""


def test_function_app_adds_our_hooks_to_the_workers_azure_monitor_setup_and_nothing_else(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
    env.update({
        "PYTHONPATH": str(ROOT),
        "APPLICATIONINSIGHTS_CONNECTION_STRING":
            "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=https://127.0.0.1:9/",
        "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL": "true",
        "APPLICATIONINSIGHTS_CONTROLPLANE_DISABLED": "true",
        "OTEL_EXPERIMENTAL_RESOURCE_DETECTORS": "otel",
        "OTEL_BSP_SCHEDULE_DELAY": "600000",  # nothing is sent to the unreachable endpoint meanwhile
        # Every span recorded: the distro's default rate-limited sampler may drop the first span of a
        # process that reaches its call within milliseconds of start-up, and the hooks skip what it drops.
        "OTEL_TRACES_SAMPLER": "always_on",
    })
    done = subprocess.run([sys.executable, "-c", WORKER], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["same_provider"] and seen["configured_by_us"] is None  # the worker's, not a second one
    assert seen["root_handlers"] == ["LoggingHandler"]
    (call,) = [c for c in seen["calls"] if "pcsync.request_id" in c]
    assert call["pcsync.request_id"] == "r-1" and call["pcsync.correlation_id"] == "c-1"
