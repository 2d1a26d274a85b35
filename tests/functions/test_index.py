"""The real function index, as the Python worker builds it from function_app.py."""

from __future__ import annotations

import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.local.host import function_index

ROOT = Path(__file__).resolve().parents[2]
NCRONTAB_SETTING = re.compile(r"^%[A-Z_]+%$")


def test_indexing_needs_no_settings():
    """A fresh interpreter with no settings (and a broken one) still indexes every function."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PARTNER_CENTER_", "SYNC_", "AzureWebJobs"))}
    env["PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE"] = "not a number"
    env["PARTNER_CENTER_ACCOUNTS"] = "[{broken json"
    script = "import function_app; print(len(function_app.app.get_functions()))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.strip().splitlines()[-1]) == len(function_index())


def test_timers_are_registered_with_schedules_from_settings():
    index = function_index()
    for name, setting in (("incremental_sync", "%INCREMENTAL_SYNC_SCHEDULE%"),
                          ("full_reconciliation", "%FULL_SYNC_SCHEDULE%")):
        trigger = index[name].get_trigger()
        assert trigger.get_binding_name() == "timerTrigger"
        assert trigger.get_dict_repr()["schedule"] == setting


@pytest.mark.parametrize("name", sorted(function_index()))
def test_every_binding_names_a_parameter_of_its_function(name):
    function = function_index()[name]
    parameters = set(inspect.signature(function.get_user_function()).parameters)
    bindings = [b for b in function.get_bindings() if b.name != "$return"]
    assert {b.name for b in bindings} == parameters
    for binding in function.get_bindings():
        if binding.get_dict_repr().get("schedule"):
            assert NCRONTAB_SETTING.match(binding.get_dict_repr()["schedule"])


def test_function_names_are_stable():
    assert {"incremental_sync", "full_reconciliation"} <= set(function_index())


def _auth_levels() -> dict[str, str]:
    levels = {}
    for name, function in function_index().items():
        trigger = function.get_trigger()
        if trigger.get_binding_name() == "httpTrigger":
            level = trigger.get_dict_repr().get("authLevel")
            levels[name] = str(getattr(level, "value", level)).lower()
    return levels


def test_a_function_key_opens_contact_validation_and_nothing_else():
    """The Platform's key (a function key of validate_contact_edit, docs/deploy.md) opens one door:
    every other HTTP function needs no key at all, because none accepts one as authorization:
    the operator routes and the console authorize the signed-in principal's role
    (test_sign_in.py), the webhook its signature. No route needs the master (admin) key."""
    levels = _auth_levels()
    assert {name for name, level in levels.items() if level != "anonymous"} == {"validate_contact_edit"}
    assert levels["validate_contact_edit"] == "function"


def test_every_anonymous_http_function_is_an_operator_route_the_console_or_the_webhook():
    from devstack.local.server import http_routes

    anonymous = [route for route in http_routes() if route.auth_level == "anonymous"]
    assert all(route.route.startswith(("ops/", "console", "partner-center/events/")) for route in anonymous)
