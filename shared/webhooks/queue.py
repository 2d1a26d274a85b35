"""The ``webhook-events`` queue: one small message per stored event, for the queue trigger.

The receiver stores an event in ``WebhookEvents`` first and then puts a message naming it here;
the queue trigger (``shared/functions/webhook_events.py``) syncs the event's customer inside an
invocation of its own, so no work runs after the HTTP answer. A message is JSON::

    {"account": "contoso-direct", "event": "<64 hex digits>", "traceContext": {"traceparent": "..."}}

``traceContext`` carries a W3C trace-context carrier (``traceparent``, ``tracestate``) from the
receiver to the trigger; it is an empty object until telemetry fills it. The message holds no
customer data: the trigger reads the event from the table, which stays the source of truth.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from shared.store.connections import StorageConnection
from shared.store.queues import PoisonedQueue, account_field, json_message

EVENT_QUEUE = "webhook-events"
# The name the Functions runtime gives the poison queue of a queue trigger.
POISON_QUEUE = EVENT_QUEUE + "-poison"
# The app setting the queue trigger listens through (always set on a Function App).
EVENT_QUEUE_CONNECTION = "AzureWebJobsStorage"

_FIELDS = {"account", "event", "traceContext"}
_EVENT_KEY = re.compile(r"^[0-9a-f]{64}$")
_MAX_BODY_BYTES = 4096
_MAX_TRACE_ENTRIES = 8
_MAX_TRACE_CHARS = 512


class MalformedEventMessage(ValueError):
    """A message that is not an event message; the text names the problem, never the values."""


@dataclass(frozen=True)
class EventMessage:
    """A stored webhook event to process: its account and key, and the trace it belongs to."""

    account_id: str
    event_key: str
    trace_context: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"account": self.account_id, "event": self.event_key,
                           "traceContext": dict(self.trace_context)}, separators=(",", ":"))

    @classmethod
    def parse(cls, body: bytes | str) -> "EventMessage":
        """The message in a queue body, validated strictly; :class:`MalformedEventMessage` otherwise."""
        fields = json_message(body, fields=_FIELDS, max_bytes=_MAX_BODY_BYTES, error=MalformedEventMessage)
        account = account_field(fields, MalformedEventMessage)
        event = fields.get("event")
        if not isinstance(event, str) or not _EVENT_KEY.match(event):
            raise MalformedEventMessage("'event' must be a stored event's key (64 lowercase hex digits)")
        trace = fields.get("traceContext", {})
        if (not isinstance(trace, dict) or len(trace) > _MAX_TRACE_ENTRIES
                or not all(isinstance(k, str) and isinstance(v, str) and len(k) + len(v) <= _MAX_TRACE_CHARS
                           for k, v in trace.items())):
            raise MalformedEventMessage(f"'traceContext' must be an object of at most {_MAX_TRACE_ENTRIES} "
                                        "short string entries")
        return cls(account, event, dict(trace))


class EventQueue(PoisonedQueue):
    """The ``webhook-events`` queue and its poison queue."""

    @classmethod
    def open(cls, storage: StorageConnection, *, parked_seconds: int = -1) -> "EventQueue":
        """The queues in the account the queue trigger listens to (``AzureWebJobsStorage``); a parked
        message lives ``parked_seconds`` (-1: for ever)."""
        return cls(storage.queue(EVENT_QUEUE), storage.queue(POISON_QUEUE), parked_seconds=parked_seconds)

    def send(self, message: EventMessage) -> str:
        """Put an event message on the queue; returns the message id."""
        return self.send_body(message.to_json().encode())
