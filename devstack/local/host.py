"""A stand-in for the Functions host: the real function index, invoked with real trigger objects.

Azure Functions Core Tools cannot be installed everywhere; this drives the very functions that
`function_app.py` registers, the way the host would.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest



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
    function.get_user_function()(TimerRequest(past_due=past_due))


def call_http(name: str, request: func.HttpRequest) -> func.HttpResponse:
    """Invoke an HTTP function with a real request object."""
    return function_index()[name].get_user_function()(request)
