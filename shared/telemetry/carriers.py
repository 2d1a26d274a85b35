"""Trace context carried in a message (W3C ``traceparent``), so a webhook's receive and its
processing on the other side of a queue belong to one trace."""

from __future__ import annotations

from typing import Mapping

from opentelemetry import context as otel_context
from opentelemetry import propagate


def inject_context() -> dict[str, str]:
    """The current trace context as message fields (empty when there is no recording span)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def extract_context(carrier: Mapping[str, str] | None) -> otel_context.Context:
    """The context a message carried, to start the processing span in
    (``tracer.start_as_current_span(..., context=extract_context(fields))``). Malformed or
    missing fields give an empty context: a new trace, never an error."""
    fields = {k: v for k, v in (carrier or {}).items() if isinstance(k, str) and isinstance(v, str)}
    return propagate.extract(fields)
