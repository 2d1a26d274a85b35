"""The queue trigger that processes webhook events: one stored event per ``webhook-events`` message.

The receiver (``webhooks.py``) stores an event and queues its key; this trigger syncs the event's
customer inside an invocation. The runtime retries a message whose sync failed (after host.json's
``visibilityTimeout``) and moves it to ``webhook-events-poison`` after ``maxDequeueCount``
attempts; the event then stays pending in ``WebhookEvents`` for the incremental run's drain.
"""

from __future__ import annotations

import azure.functions as func

from shared.settings import Settings, get_settings
from shared.sync.service import INTERACTIVE, account_sync, stores_for
from shared.webhooks.processing import SyncFor, process_queued_event
from shared.webhooks.queue import EVENT_QUEUE, EVENT_QUEUE_CONNECTION

from .units import queue_options

bp = func.Blueprint()


@bp.function_name("process_webhook_event")
@bp.queue_trigger(arg_name="message", queue_name=EVENT_QUEUE, connection=EVENT_QUEUE_CONNECTION)
def process_webhook_event(message: func.QueueMessage) -> None:
    """Sync the customer of the stored event the message names; raising makes the runtime retry it."""
    settings = get_settings()
    process_queued_event(message.get_body(), message_id=message.id or "", dequeue_count=message.dequeue_count or 1,
                         max_dequeue_count=queue_options().max_dequeue_count, settings=settings,
                         sync_for=syncs_for(settings))


def syncs_for(settings: Settings) -> SyncFor:
    """Composition: builds an account's sync from settings; the processing only uses what it is given."""
    # A customer who just accepted is waiting: the interactive lane, never behind a reconciliation.
    return lambda account_id: account_sync(settings.account(account_id), settings, stores_for(settings),
                                           lane=INTERACTIVE)
