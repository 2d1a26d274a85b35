"""The queue trigger that processes webhook events: one stored event per ``webhook-events`` message.

The receiver (``webhooks.py``) stores an event and queues its key; this trigger syncs the event's
customer inside an invocation of its own. The runtime retries a message whose sync failed (after
host.json's ``visibilityTimeout``) and moves it to ``webhook-events-poison`` after ``maxDequeueCount``
attempts; the event then stays pending in ``WebhookEvents`` for the incremental run's drain.
"""

from __future__ import annotations

import azure.functions as func

from shared import app
from shared.host_config import queue_options
from shared.webhooks.processing import process_queued_event
from shared.webhooks.queue import EVENT_QUEUE, EVENT_QUEUE_CONNECTION

bp = func.Blueprint()


@bp.function_name("process_webhook_event")
@bp.queue_trigger(arg_name="message", queue_name=EVENT_QUEUE, connection=EVENT_QUEUE_CONNECTION)
def process_webhook_event(message: func.QueueMessage) -> None:
    """Sync the customer of the stored event the message names; raising makes the runtime retry it."""
    wired = app.current()
    process_queued_event(message.get_body(), message_id=message.id or "", dequeue_count=message.dequeue_count or 1,
                         max_dequeue_count=queue_options().max_dequeue_count, settings=wired.settings,
                         events=wired.events, queue=wired.event_queue,
                         sync_for=wired.interactive_sync)  # a customer who just accepted is waiting
    # The Platform hears of it within seconds (docs/events.md).
    wired.publish_events_after_writes()
