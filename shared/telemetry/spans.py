"""The sync's own spans: one per run of an account, one per page of a walk."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from . import names
from .carriers import extract_context
from .context import RunContext, current_run, with_run
from .metrics import record_run_metrics

log = logging.getLogger(__name__)

# Outcomes that mean the run did not do its work (the run log's RunOutcome values).
_FAILED_OUTCOMES = ("failed", "abandoned")


def tracer() -> trace.Tracer:
    """The service's tracer (a no-op one until telemetry is configured)."""
    return trace.get_tracer(names.SCOPE)


@contextmanager
def run_span(account_id: str, mode: str, *, correlation_id: str = "") -> Iterator[trace.Span]:
    """A span around one account's run; ``correlation_id`` is the run's ``MS-CorrelationId``.

    Every log record and Partner Center call made inside carries the run's account, mode and
    correlation id (and run id, once :func:`record_run` or ``bind_run_id`` names it).
    """
    attributes = {names.ACCOUNT: account_id, names.MODE: mode}
    if correlation_id:
        attributes[names.CORRELATION_ID] = correlation_id
    with tracer().start_as_current_span(names.SPAN_RUN, attributes=attributes) as span:
        run = RunContext(account_id, mode, correlation_id=correlation_id, span=span)
        token = otel_context.attach(with_run(run))
        try:
            yield span
        finally:
            otel_context.detach(token)


@contextmanager
def page_span(account_id: str, mode: str, page_number: int) -> Iterator[trace.Span]:
    """A span around one page of a customer walk (list call, profiles, writes)."""
    attributes = {names.ACCOUNT: account_id, names.MODE: mode, names.PAGE_NUMBER: int(page_number)}
    run = current_run()
    if run is not None:
        attributes.update({k: v for k, v in run.attributes().items() if k in (names.RUN_ID, names.CORRELATION_ID)})
    with tracer().start_as_current_span(names.SPAN_PAGE, attributes=attributes) as span:
        yield span


@contextmanager
def webhook_processing_span(account_id: str, carrier: dict | None, queue_name: str) -> Iterator[trace.Span]:
    """The processing of a queued webhook event, continuing the trace of the request that received
    it (``carrier``: the message's ``traceContext``); a message without one starts a new trace."""
    attributes = {names.ACCOUNT: account_id, "messaging.system": "azure_storage_queues",
                  "messaging.destination.name": queue_name, "messaging.operation.type": "process"}
    with tracer().start_as_current_span(names.SPAN_WEBHOOK_PROCESS, context=extract_context(carrier),
                                        kind=trace.SpanKind.CONSUMER, attributes=attributes) as span:
        yield span


def record_run(span: trace.Span, result, *, budget_per_minute: int | None = None) -> None:
    """Put a finished run's figures on its span, in the metrics, and in one structured log line.

    ``result`` is a ``RunResult`` (account_id, mode, run_id, outcome, counts, api_calls,
    throttled_calls, started_at, ended_at).
    """
    counts = result.counts.as_dict() if hasattr(result.counts, "as_dict") else dict(result.counts)
    outcome, mode = str(result.outcome), str(result.mode)  # plain strings, also for enum values
    run = current_run()
    if run is not None and result.run_id:
        run.run_id = result.run_id
    attributes = {
        names.ACCOUNT: result.account_id,
        names.MODE: mode,
        names.RUN_ID: result.run_id,
        names.OUTCOME: outcome,
        names.API_CALLS: int(result.api_calls),
        names.THROTTLED_CALLS: int(result.throttled_calls),
        **{names.COUNT_ATTRIBUTES[name]: int(value) for name, value in counts.items()
           if name in names.COUNT_ATTRIBUTES},
    }
    span.set_attributes(attributes)
    if outcome in _FAILED_OUTCOMES:
        span.set_status(Status(StatusCode.ERROR, (result.error or outcome)[:200]))
    duration = _duration_seconds(result)
    record_run_metrics(result.account_id, mode, outcome, counts, api_calls=int(result.api_calls),
                       throttled_calls=int(result.throttled_calls), duration_seconds=duration,
                       budget_per_minute=budget_per_minute)
    level = logging.ERROR if outcome in _FAILED_OUTCOMES else logging.INFO
    log.log(level, "account %s: %s run %s %s (%s; %d API calls, %d throttled)", result.account_id, mode,
            result.run_id, outcome, ", ".join(f"{k} {v}" for k, v in counts.items()),
            result.api_calls, result.throttled_calls, extra={names.OUTCOME: outcome})


def _duration_seconds(result) -> float | None:
    if result.started_at is None or result.ended_at is None:
        return None
    return max(0.0, (result.ended_at - result.started_at).total_seconds())
