"""The Azure SDK span plugin: an operation's HTTP attempts fold into the operation's span, and an
HTTP call outside any operation keeps its own span."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
from azure.core.tracing import SpanKind
from opentelemetry.trace import StatusCode

from shared.telemetry.azure_sdk import AzureSdkSpan, sdk_calls_in_one_span


def test_an_http_attempt_inside_an_operation_records_on_the_operations_span(otel):
    with AzureSdkSpan(name="TableClient.get_entity", kind=SpanKind.INTERNAL) as operation:
        attempt = AzureSdkSpan(name="GET", kind=SpanKind.CLIENT)
        header = attempt.to_header()["traceparent"]
        attempt.set_http_attributes(SimpleNamespace(method="GET", url="http://x/t", headers={}),
                                    SimpleNamespace(status_code=404))
        attempt.add_attribute("az.service_request_id", "svc-1")
        attempt.add_attribute("http.url", "http://x/t?sig=secret")
        attempt.finish()
    (span,) = otel.spans()
    assert span.name == "TableClient.get_entity" and span.context.span_id == operation.span_instance.context.span_id
    assert span.attributes["http.response.status_code"] == 404 and span.attributes["error.type"] == "404"
    assert span.attributes["az.service_request_id"] == "svc-1"
    assert "url.full" not in span.attributes and "http.url" not in span.attributes
    # Storage still sees the operation as the caller.
    assert f"{span.context.span_id:016x}" in header


def test_an_operation_called_by_another_is_not_a_span_of_its_own(otel):
    with AzureSdkSpan(name="TableClient.list_entities", kind=SpanKind.INTERNAL):
        with AzureSdkSpan(name="TableOperations.query_entities", kind=SpanKind.INTERNAL):
            pass
    assert [s.name for s in otel.spans()] == ["TableClient.list_entities"]


def test_an_http_call_outside_any_operation_keeps_its_client_span(otel):
    call = AzureSdkSpan(name="GET", kind=SpanKind.CLIENT)
    call.set_http_attributes(SimpleNamespace(method="GET", url="http://127.0.0.1:1/q", headers={}),
                             SimpleNamespace(status_code=200))
    call.finish()
    (span,) = otel.spans()
    assert span.name == "GET" and span.attributes["http.response.status_code"] == 200


def _an_sdk_call() -> None:
    with AzureSdkSpan(name="TableClient.create_entity", kind=SpanKind.INTERNAL):
        attempt = AzureSdkSpan(name="POST", kind=SpanKind.CLIENT)
        attempt.set_http_attributes(SimpleNamespace(method="POST", url="http://x/t", headers={}),
                                    SimpleNamespace(status_code=201))
        attempt.finish()


def test_sdk_calls_inside_one_span_record_nothing_of_their_own_on_any_thread(otel):
    with sdk_calls_in_one_span("pcsync.tenant_index.record", {"pcsync.tenant_index.rows": 3}):
        _an_sdk_call()
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lambda _: _an_sdk_call(), range(2)))
    (span,) = otel.spans()
    assert span.name == "pcsync.tenant_index.record" and span.attributes["pcsync.tenant_index.rows"] == 3
    _an_sdk_call()  # and outside it, the calls are spans again
    assert [s.name for s in otel.spans()][1:] == ["TableClient.create_entity"]


def test_a_failure_inside_one_span_ends_it_in_error(otel):
    with pytest.raises(RuntimeError):
        with sdk_calls_in_one_span("pcsync.tenant_index.record", {}):
            raise RuntimeError("row not written")
    (span,) = otel.spans()
    assert span.status.status_code == StatusCode.ERROR


def test_instrumenting_makes_it_the_azure_sdks_tracing_plugin(otel):
    from azure.core.settings import settings

    assert settings.tracing_implementation() is AzureSdkSpan
