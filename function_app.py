"""The Function App: registers the blueprints and nothing else.

Settings are read when a function runs, never here: an import-time error would make the
Functions host load no functions at all.
"""

import azure.functions as func

from shared import telemetry
from shared.app import watch_current
from shared.functions import console, contacts, lookups, ops, sync_units, timers, webhook_events, webhooks

app = func.FunctionApp(http_auth_level=func.AuthLevel.FUNCTION)
app.register_functions(timers.bp)
app.register_functions(contacts.bp)
app.register_functions(ops.bp)
app.register_functions(lookups.bp)
app.register_functions(console.bp)
app.register_functions(webhooks.bp)
app.register_functions(sync_units.bp)
app.register_functions(webhook_events.bp)

# In Azure the worker has configured Azure Monitor by now (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY);
# this adds our Partner Center call hooks, log context and the accounts' gauges. It never raises and
# reads no setting.
telemetry.configure_in_worker(watch=watch_current)
