"""Azure SDK spans (Table Storage, queues): one span per SDK operation, its HTTP hops folded in.

The Azure SDK's OpenTelemetry plugin makes two spans per operation: the operation's own
(``TableClient.submit_transaction``, INTERNAL) and, under it, one CLIENT span per HTTP attempt
made by the pipeline's ``DistributedTracingPolicy``. An operator needs the first (a span per table
transaction); the second doubles the spans, their export and the CPU per storage call. Here an
HTTP attempt made inside an operation span records nothing of its own: its status code, error type,
retry count and Azure request ids go onto the operation's span instead. An HTTP call outside any
operation span (none of ours) keeps its CLIENT span.

Where one span of ours stands for many small SDK calls (the tenant index's rows, written one
by one), :func:`sdk_calls_in_one_span` makes the calls inside record nothing of their own.

The plugin also keeps one tracer instead of asking the provider for a new one at every span.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from azure.core.tracing import SpanKind
from azure.core.tracing.ext import opentelemetry_span as plugin
from opentelemetry import context, trace
from opentelemetry.propagate import extract
from opentelemetry.trace import Link, NonRecordingSpan

# What an HTTP attempt still tells, on its operation's span (DistributedTracingPolicy's names).
_FOLDED_ATTRIBUTES = frozenset({"az.service_request_id", "az.client_request_id", "http.request.resend_count"})
_STATUS_CODE = "http.response.status_code"
_ERROR_TYPE = "error.type"
_OTEL_KINDS = plugin._SPAN_KIND_MAPPINGS  # azure SpanKind -> OpenTelemetry SpanKind
_IN_ONE_SPAN = context.create_key("pcsync-azure-sdk-calls-in-one-span")


class AzureSdkSpan(plugin.OpenTelemetrySpan):
    """``azure.core.settings.tracing_implementation`` for this service (see the module's text)."""

    _tracers: dict[str, trace.Tracer] = {}  # by schema version

    def __init__(self, span: trace.Span | None = None, name: str | None = "span", *,
                 kind: SpanKind | None = None, links: list | None = None, **kwargs: Any) -> None:
        self._current_ctxt_manager = None
        self._schema_version = kwargs.pop("schema_version", plugin._OpenTelemetrySchemaVersion.V1_23_1)
        self._attribute_mappings = plugin.OpenTelemetrySchema.get_attribute_mappings(self._schema_version)
        self._folded = False  # True: records nothing of its own (an HTTP attempt, or inside one span)
        self._operation: trace.Span | None = None  # an HTTP attempt's operation span
        if span is not None:
            self._span_instance = span
            return
        if context.get_value(_IN_ONE_SPAN):
            self._folded = True
            self._span_instance = NonRecordingSpan(trace.get_current_span().get_span_context())
            return
        otel_kind = _OTEL_KINDS.get(kind)
        if kind is not None and otel_kind is None:
            raise ValueError(f"Kind {kind} is not supported in OpenTelemetry")
        if context.get_value(plugin._SUPPRESSED_SPAN_FLAG):
            if otel_kind == trace.SpanKind.INTERNAL:
                # An SDK operation called by another: the outer one is its span (the plugin's rule).
                self._span_instance = NonRecordingSpan(self.get_current_span().get_span_context())
                return
            operation = _operation_span()
            if kind == SpanKind.CLIENT and operation is not None and not links and "context" not in kwargs:
                self._folded, self._operation = True, operation
                self._span_instance = NonRecordingSpan(operation.get_span_context())
                return
        if links:
            kwargs.setdefault("links", [_link(link) for link in links])
        parent = kwargs.pop("context", None)
        if parent:
            kwargs["context"] = extract(parent)
        self._span_instance = self._tracer(self._schema_version).start_span(name=name, kind=otel_kind, **kwargs)

    @classmethod
    def _tracer(cls, schema_version) -> trace.Tracer:
        tracer = cls._tracers.get(schema_version)
        if tracer is None:
            # A proxy until a provider is set, then the provider's tracer: safe to keep.
            tracer = cls._tracers[schema_version] = trace.get_tracer(
                plugin.__name__, plugin.__version__, schema_url=plugin.OpenTelemetrySchema.get_schema_url(schema_version))
        return tracer

    def set_http_attributes(self, request, response=None) -> None:
        if not self._folded:
            super().set_http_attributes(request, response)
            return
        if self._operation is None:
            return
        status = getattr(response, "status_code", None) or 504  # no response: what the plugin reports
        self._operation.set_attribute(_STATUS_CODE, status)
        if status >= 400:
            self._operation.set_attribute(_ERROR_TYPE, str(status))

    def add_attribute(self, key: str, value) -> None:
        if not self._folded:
            super().add_attribute(key, value)
        elif self._operation is not None and key in _FOLDED_ATTRIBUTES:
            self._operation.set_attribute(key, value)

    def finish(self) -> None:
        if not self._folded:
            super().finish()

    def to_header(self) -> dict[str, str]:
        if self._folded and self._operation is None:
            return {}  # a call inside one span of ours: no span of its own to name as the caller
        return super().to_header()


@contextmanager
def sdk_calls_in_one_span(name: str, attributes: Mapping[str, Any]) -> Iterator[trace.Span]:
    """A span of ours standing for every Azure SDK call made inside it, on this thread and on the
    worker threads it starts (the threading instrumentation carries the context): those calls,
    and their HTTP, record no span of their own. A failure inside ends this span in error."""
    from .spans import tracer

    with tracer().start_as_current_span(name, attributes=dict(attributes)) as span:
        quiet = context.set_value(_IN_ONE_SPAN, True)
        quiet = context.set_value(plugin._SUPPRESS_HTTP_INSTRUMENTATION_KEY, True, quiet)
        token = context.attach(quiet)
        try:
            yield span
        finally:
            context.detach(token)


def _operation_span() -> trace.Span | None:
    """The recording SDK operation span the calling code runs in, if that is the current span."""
    operation = context.get_value(plugin._LAST_UNSUPPRESSED_SPAN)
    if operation is None:
        return None
    instance = operation.span_instance
    current = trace.get_current_span()
    if current is instance or (isinstance(current, NonRecordingSpan)
                               and current.get_span_context() == instance.get_span_context()):
        return instance if instance.is_recording() else None
    return None


def _link(link):
    """An Azure core link (W3C headers and attributes) as an OpenTelemetry one; an OpenTelemetry
    link as it is."""
    headers = getattr(link, "headers", None)
    if headers is None:
        return link
    return Link(trace.get_current_span(extract(headers)).get_span_context(), link.attributes)
