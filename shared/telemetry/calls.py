"""Partner Center call spans: the OpenTelemetry ``requests`` instrumentation, with hooks that add
the ids Microsoft support asks for (``MS-RequestId``, ``MS-CorrelationId``) and the status."""

from __future__ import annotations

from opentelemetry.semconv.attributes import http_attributes
from opentelemetry.trace import Span

from . import names
from .context import current_run


def request_hook(span: Span, request) -> None:
    """Before a call: the request's Partner Center ids, when it is a Partner Center call."""
    if not span.is_recording():
        return
    headers = getattr(request, "headers", None) or {}
    request_id = headers.get("MS-RequestId")
    correlation_id = headers.get("MS-CorrelationId")
    if request_id:
        span.set_attribute(names.REQUEST_ID, request_id)
    if correlation_id:
        span.set_attribute(names.CORRELATION_ID, correlation_id)
    run = current_run()
    if run is not None and (request_id or correlation_id):
        span.set_attribute(names.ACCOUNT, run.account_id)
        if run.run_id:
            span.set_attribute(names.RUN_ID, run.run_id)


def response_hook(span: Span, request, response) -> None:
    """After a call: its status under our prefix and the semantic ``http.response.status_code``."""
    if not span.is_recording() or response is None:
        return
    status = getattr(response, "status_code", None)
    if status is None:
        return
    span.set_attribute(http_attributes.HTTP_RESPONSE_STATUS_CODE, int(status))
    if request is not None and "MS-RequestId" in (getattr(request, "headers", None) or {}):
        span.set_attribute(names.HTTP_STATUS, int(status))
