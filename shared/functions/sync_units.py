"""The queue trigger that processes sync units: one account's run per message (see shared/operations/units.py).

The Functions runtime spreads the messages of ``sync-units`` over its instances, retries a unit
whose run failed (``extensions.queues`` in host.json) and moves it to ``sync-units-poison`` after
``maxDequeueCount`` attempts.
"""

from __future__ import annotations

import azure.functions as func

from shared import app
from shared.host_config import queue_options
from shared.operations.units import UNIT_QUEUE, UNIT_QUEUE_CONNECTION, process_unit

bp = func.Blueprint()


@bp.function_name("process_sync_unit")
@bp.queue_trigger(arg_name="unit", queue_name=UNIT_QUEUE, connection=UNIT_QUEUE_CONNECTION)
def process_sync_unit(unit: func.QueueMessage) -> None:
    """Run the account the unit names; raising makes the runtime retry it, then park it."""
    wired = app.current()
    process_unit(unit.get_body(), message_id=unit.id or "", dequeue_count=unit.dequeue_count or 1,
                 max_dequeue_count=queue_options().max_dequeue_count, settings=wired.settings,
                 stores=wired.stores, queue=wired.unit_queue,
                 run=lambda mode, account_id: _run_and_publish(wired, mode, account_id))


def _run_and_publish(wired: app.App, mode: str, account_id: str):
    results = wired.run_accounts(mode, account_id=account_id)
    wired.publish_events_after_writes(account_id=account_id)
    return results
