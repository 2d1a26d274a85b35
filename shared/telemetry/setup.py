"""Telemetry setup: which exporter a process uses, our instrumentation, and flushing.

- In Azure the Python worker configures Azure Monitor itself (app setting
  ``PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true`` with ``host.json``
  ``"telemetryMode": "OpenTelemetry"``): :func:`instrument` only adds ours to its providers, so
  nothing is exported twice.
- Processes we start ourselves (``python -m shared``, the local host) call :func:`configure`:
  Azure Monitor when ``APPLICATIONINSIGHTS_CONNECTION_STRING`` is set, else OTLP when the standard
  ``OTEL_EXPORTER_OTLP_*ENDPOINT`` settings are, else nothing at all. They :func:`flush` before exit.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, Mapping

from opentelemetry import metrics, trace
from opentelemetry import _logs

from shared.settings import TelemetrySettings, telemetry_settings

from . import calls
from .context import current_run

log = logging.getLogger(__name__)

AZURE_MONITOR = "azure_monitor"
OTLP = "otlp"
EXISTING = "existing"  # providers set up by someone else (the Functions worker, a test)
NONE = "none"

SERVICE_NAME = "pc-organization-sync"

_lock = threading.Lock()
_mode: str | None = None
_instrumented = False
# Telemetry's own token failures: the exporter meets them in its thread, so they are kept for the
# command line to report (one line, a non-zero exit) when it flushes.
_token_failures: list = []


def configure(environ: Mapping[str, str] | None = None, *, watch: Callable[[], None] | None = None) -> str:
    """Set up exporting for this process from its settings (once) and return which exporter it uses;
    then ``watch()`` (the app's, which registers the accounts' gauges).

    A bad telemetry setting raises ``SettingsError`` naming it.
    """
    global _mode
    settings = telemetry_settings(os.environ if environ is None else environ)
    with _lock:
        if _mode is not None:
            return _mode
        if _has_sdk_providers():
            _mode = EXISTING
        elif settings.connection_string:
            _configure_azure_monitor(settings)
            _mode = AZURE_MONITOR
        elif settings.otlp_endpoint:
            _configure_otlp(settings)
            _mode = OTLP
        else:
            _mode = NONE
            return _mode
    instrument()
    if watch is not None:
        watch()
    return _mode


def configure_in_worker(watch: Callable[[], None] | None = None) -> None:
    """From ``function_app.py``: add our instrumentation to the worker's providers, then ``watch()``.
    Never raises: an exception at import would make the host load no functions."""
    try:
        if _has_sdk_providers():
            instrument()
            if watch is not None:
                watch()
    except Exception as exc:  # telemetry must never stop the app from loading
        log.warning("telemetry instrumentation skipped: %s", exc)


def instrument() -> None:
    """Our instrumentation on the current providers (idempotent): Partner Center calls through the
    ``requests`` instrumentation with our hooks, context into worker threads, a span per Azure
    SDK operation (Table Storage, queues: :mod:`.azure_sdk`), and the run's identity on every log
    record."""
    global _instrumented
    with _lock:
        if _instrumented:
            return
        _instrument_requests()
        from opentelemetry.instrumentation.threading import ThreadingInstrumentor

        if not ThreadingInstrumentor().is_instrumented_by_opentelemetry:
            ThreadingInstrumentor().instrument()
        from azure.core.settings import settings as azure_settings

        from .azure_sdk import AzureSdkSpan

        # The Azure SDK's plugin, with an operation's HTTP attempts folded into its span.
        azure_settings.tracing_implementation = AzureSdkSpan
        _install_log_context()
        azure_logger = logging.getLogger("azure")
        if azure_logger.level == logging.NOTSET:
            # The SDK logs every HTTP request at INFO: exported, that would bury the sync's own lines.
            azure_logger.setLevel(logging.WARNING)
        _instrumented = True


def flush(timeout_millis: int = 10_000) -> None:
    """Export whatever is buffered (spans, metrics, logs): command-line runs call it before exit."""
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider(), _logs.get_logger_provider()):
        force_flush = getattr(provider, "force_flush", None)
        if callable(force_flush):
            try:
                force_flush(timeout_millis)
            except Exception as exc:  # flushing is best effort; the run's outcome stands
                log.warning("telemetry flush failed: %s", exc)


def exporter_mode() -> str | None:
    """What :func:`configure` chose, or None before it ran."""
    return _mode


def _has_sdk_providers() -> bool:
    from opentelemetry.sdk.trace import TracerProvider

    return isinstance(trace.get_tracer_provider(), TracerProvider)


def _resource(settings: TelemetrySettings):
    from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_NAME_KEY, Resource

    return Resource.create({SERVICE_NAME_KEY: settings.service_name or SERVICE_NAME})


def _one_line_token_failures(record: logging.LogRecord) -> bool:
    """Once telemetry could not get a token, the exporter's own lines about failed exports go: the
    failure is kept instead (:func:`token_failures`) and reported once, in one line, by the process
    that flushes. Logged, each line would also be exported, fail again and log again, in a loop."""
    from shared.credentials import TokenUnavailable

    if record.exc_info and isinstance(record.exc_info[1], TokenUnavailable):
        return False
    return not _token_failures


def token_failures() -> list:
    """The token failures telemetry met in this process (``TokenUnavailable``), oldest first."""
    return list(_token_failures)


def _configure_azure_monitor(settings: TelemetrySettings) -> None:
    from azure.monitor.opentelemetry import configure_azure_monitor

    credential = None
    if settings.uses_entra_id:
        # Identity-based ingestion (local auth off): the Function App's managed identity.
        from azure.identity import ManagedIdentityCredential

        from shared.credentials import NamedCredential, managed_identity_name

        credential = NamedCredential(ManagedIdentityCredential(client_id=settings.identity_client_id or None),
                                     "APPLICATIONINSIGHTS", managed_identity_name(settings.identity_client_id),
                                     on_failure=_token_failures.append, quiet_after_failure=300.0)
        logging.getLogger("azure.monitor.opentelemetry.exporter.export._base").addFilter(_one_line_token_failures)
    sampling = {} if os.environ.get("OTEL_TRACES_SAMPLER") else {
        # Keep every trace of a command-line run: the distro's default rate limit (a few traces a
        # second) would drop the run span behind the start-up's table calls.
        "sampling_ratio": 1.0}
    configure_azure_monitor(
        **sampling,
        connection_string=settings.connection_string,
        credential=credential,
        resource=_resource(settings),
        # A command-line run is too short for live metrics and for the performance counters (whose
        # processor-time sampler divides by zero over a run of a few seconds and logs a traceback);
        # the worker keeps its own defaults.
        enable_live_metrics=False,
        enable_performance_counters=False,
        # We instrument requests ourselves, with hooks; the web frameworks are not used here, and
        # urllib3 only under requests (whose span already covers the call) or the Azure SDK.
        instrumentation_options={name: {"enabled": False} for name in
                                 ("requests", "django", "fastapi", "flask", "psycopg2", "urllib", "urllib3")},
    )


def _configure_otlp(settings: TelemetrySettings) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.logging.handler import LoggingHandler
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The exporters read the standard OTEL_EXPORTER_OTLP_* settings (endpoint, headers, timeout).
    resource = _resource(settings)
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(resource=resource,
                                             metric_readers=[PeriodicExportingMetricReader(OTLPMetricExporter())]))
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    _logs.set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))


def _instrument_requests() -> None:
    from opentelemetry.instrumentation.requests import RequestsInstrumentor

    instrumentor = RequestsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        # The worker's distro instrumented requests without our hooks: do it again with them.
        instrumentor.uninstrument()
    instrumentor.instrument(request_hook=calls.request_hook, response_hook=calls.response_hook)


_factory_installed = False


def _install_log_context() -> None:
    """Every log record made inside a run carries its account, mode, run id and correlation id."""
    global _factory_installed
    if _factory_installed:
        return
    previous = logging.getLogRecordFactory()

    def record_with_run(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        run = current_run()
        if run is not None:
            for key, value in run.attributes().items():
                setattr(record, key, value)
        return record

    logging.setLogRecordFactory(record_with_run)
    _factory_installed = True
