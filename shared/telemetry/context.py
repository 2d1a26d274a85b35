"""The run a thread is working for: account, mode, run id and correlation id.

``run_span`` puts it in the OpenTelemetry context, which the threading instrumentation carries
into the run's worker threads; the log record factory copies it onto every record, so logs carry
the run's identity without each call site passing ``extra=``.
"""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry import context as otel_context
from opentelemetry import trace

from . import names

_RUN_KEY = otel_context.create_key("pcsync-run")


@dataclass
class RunContext:
    """Mutable on purpose: the run id is learnt after the run began, and every thread shares it."""

    account_id: str
    mode: str
    run_id: str = ""
    correlation_id: str = ""
    span: trace.Span | None = None

    def attributes(self) -> dict[str, str]:
        """The non-empty fields as telemetry attributes."""
        values = {names.ACCOUNT: self.account_id, names.MODE: self.mode,
                  names.RUN_ID: self.run_id, names.CORRELATION_ID: self.correlation_id}
        return {key: value for key, value in values.items() if value}


def current_run() -> RunContext | None:
    """The run the calling code works for, if any."""
    return otel_context.get_value(_RUN_KEY)


def with_run(run: RunContext) -> otel_context.Context:
    """The current context with ``run`` in it (attach it; detach the token afterwards)."""
    return otel_context.set_value(_RUN_KEY, run)


def bind_run_id(run_id: str) -> None:
    """Name the current run once its id is known (the run log assigns it after the span starts)."""
    run = current_run()
    if run is not None:
        run.run_id = run_id
        if run.span is not None:
            run.span.set_attribute(names.RUN_ID, run_id)
