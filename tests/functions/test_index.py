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
