"""A stand-in for the Functions host: the real function index, invoked with real trigger objects.

Azure Functions Core Tools cannot be installed everywhere; this drives the very functions that
`function_app.py` registers, the way the host would.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest
from opentelemetry.trace import SpanKind

from shared import telemetry



@lru_cache(maxsize=1)
def function_index() -> dict[str, Any]:
    """The registered functions by name, exactly as the Python worker indexes them.

    Built once: like the worker, the app may be indexed only once per process.
    """
    import function_app

    return {f.get_function_name(): f for f in function_app.app.get_functions()}


def fire_timer(name: str, *, past_due: bool = False) -> None:
    """Invoke a timer function as the host does when its schedule fires."""
    function = function_index()[name]
    trigger = function.get_trigger()
    if trigger.get_binding_name() != "timerTrigger":
        raise ValueError(f"{name} is not a timer function")
    # The Functions host starts a span per invocation; the local stand-in does the same.
    with telemetry.tracer().start_as_current_span(f"timer {name}", kind=SpanKind.INTERNAL,
                                                  attributes={"faas.trigger": "timer", "faas.name": name}):
        function.get_user_function()(TimerRequest(past_due=past_due))


def call_http(name: str, request: func.HttpRequest) -> func.HttpResponse:
    """Invoke an HTTP function with a real request object."""
    with telemetry.tracer().start_as_current_span(f"{request.method} {name}", kind=SpanKind.SERVER,
                                                  attributes={"faas.trigger": "http", "faas.name": name,
                                                              "http.request.method": request.method}) as span:
        response = function_index()[name].get_user_function()(request)
        span.set_attribute("http.response.status_code", response.status_code)
        return response


def start_telemetry() -> str:
    """Export the local stack's telemetry as ``python -m shared`` does (Azure Monitor, OTLP, or
    nothing, by the same settings); callers :func:`shared.telemetry.flush` before exiting."""
    return telemetry.configure()
