"""Observability with OpenTelemetry: setup, the run and page spans, metric instruments, log
context and trace-context carriers. Names live in :mod:`shared.telemetry.names`.
docs/operations.md says what to watch."""

from .azure_sdk import sdk_calls_in_one_span
from .carriers import extract_context, inject_context
from .context import bind_run_id, current_run
from .metrics import meter, read_account, record_event_not_stored, record_publishing, unwatch_state, watch_state
from .setup import configure, configure_in_worker, exporter_mode, flush, instrument, token_failures
from .spans import page_span, record_run, run_span, tracer, webhook_processing_span

__all__ = [
    "bind_run_id", "configure", "configure_in_worker", "current_run", "exporter_mode", "extract_context", "flush",
    "inject_context", "instrument", "meter", "page_span", "read_account", "record_event_not_stored", "record_publishing", "record_run",
    "run_span",
    "sdk_calls_in_one_span", "token_failures", "tracer", "unwatch_state", "watch_state", "webhook_processing_span",
]
