"""In-memory OpenTelemetry for the telemetry tests: the SDK's own span, metric and log exporters
behind the global providers, as the Functions worker would have set them up."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import pytest
from opentelemetry import _logs, metrics, trace
from opentelemetry.instrumentation.logging.handler import LoggingHandler
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider, ObservableGauge
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import telemetry


class _SpanGate(SpanProcessor):
    """Exports only while a telemetry test runs: the providers stay global for the session."""

    def __init__(self, processor) -> None:
        self.processor, self.open = processor, False

    def on_start(self, span, parent_context=None):
        if self.open:
            self.processor.on_start(span, parent_context)

    def on_end(self, span):
        if self.open:
            self.processor.on_end(span)


class _LogGate(LogRecordProcessor):
    def __init__(self, processor) -> None:
        self.processor, self.open = processor, False

    def on_emit(self, log_data):
        if self.open:
            self.processor.on_emit(log_data)

    def shutdown(self):
        self.processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000):
        return True


@dataclass
class Exported:
    spans_exporter: InMemorySpanExporter
    logs_exporter: InMemoryLogRecordExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None):
        found = self.spans_exporter.get_finished_spans()
        return [s for s in found if name is None or s.name == name]

    def logs(self):
        return [getattr(item, "log_record", item) for item in self.logs_exporter.get_finished_logs()]

    def metrics(self) -> dict[str, list]:
        """Metric name -> data points collected since the last call (delta for counters)."""
        points: dict[str, list] = {}
        data = self.reader.get_metrics_data()
        for resource in (data.resource_metrics if data else []):
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    points.setdefault(metric.name, []).extend(metric.data.data_points)
        return points

    def everything(self) -> str:
        """All exported telemetry as text, for secret scans."""
        texts = [span.to_json() for span in self.spans()]
        texts += [json.dumps({"body": str(r.body), "attributes": dict(r.attributes or {})}, default=str)
                  for r in self.logs()]
        texts.append(json.dumps({name: [p.to_json() if hasattr(p, "to_json") else str(p) for p in found]
                                 for name, found in self.metrics().items()}, default=str))
        return "\n".join(texts)


@pytest.fixture(scope="session")
def _providers():
    spans, logs = InMemorySpanExporter(), InMemoryLogRecordExporter()
    span_gate, log_gate = _SpanGate(SimpleSpanProcessor(spans)), _LogGate(SimpleLogRecordProcessor(logs))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(span_gate)
    trace.set_tracer_provider(tracer_provider)
    delta = {Counter: AggregationTemporality.DELTA, Histogram: AggregationTemporality.DELTA,
             ObservableGauge: AggregationTemporality.CUMULATIVE}
    reader = InMemoryMetricReader(preferred_temporality=delta)
    metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(log_gate)
    _logs.set_logger_provider(logger_provider)
    assert trace.get_tracer_provider() is tracer_provider, "another test set the global tracer provider first"
    # What function_app.py does in the worker, on the worker's providers.
    telemetry.configure_in_worker()
    return Exported(spans, logs, reader), span_gate, log_gate, logger_provider


@pytest.fixture
def otel(_providers):
    """Telemetry exported during this test: ``otel.spans()``, ``otel.metrics()``, ``otel.logs()``."""
    exported, span_gate, log_gate, logger_provider = _providers
    exported.spans_exporter.clear()
    exported.logs_exporter.clear()
    exported.metrics()  # start counting from here
    handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    span_gate.open = log_gate.open = True
    yield exported
    span_gate.open = log_gate.open = False
    root.removeHandler(handler)
    root.setLevel(level)
