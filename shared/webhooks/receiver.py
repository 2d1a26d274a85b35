"""Receiving one webhook delivery: size, signature, payload, then durable storage.

Nothing is parsed before the signature holds, and nothing is stored unless every check passed;
once :func:`receive_event` returns, the event is in the table and may be acknowledged.

A signature proves Partner Center sent the event, not that it was meant for this partner or is
recent: any partner's signed event can be replayed here. So only what the service acts on is
stored, and only while it is recent: a relationship event changed within the age window
(``WEBHOOK_MAX_EVENT_AGE_DAYS``). The rest raises :class:`EventNotStored`, answered 200 (a retry
would change nothing) and never stored, so an outsider cannot grow the table.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Mapping

from .events import MAX_EVENT_BYTES, RELATIONSHIP_EVENTS, TEST_CREATED, parse_event
from .signature import SignatureVerifier
from .store import StoredEvent, WebhookEventStore

# Why an authentic event was not stored (the answer's ``reason``, the metric's attribute).
STALE = "stale"
UNHANDLED = "unhandled-event"
TEST_EVENT = "test-event"


class EventTooLarge(ValueError):
    """The body is over :data:`MAX_EVENT_BYTES`."""


class EventNotStored(Exception):
    """An authentic event the service does not keep: ``reason`` (:data:`STALE`, :data:`UNHANDLED`,
    :data:`TEST_EVENT`) and a sentence for the answer."""

    def __init__(self, event_name: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.event_name = event_name
        self.reason = reason
        self.detail = detail


def check_length(content_length: str | None) -> None:
    """Refuse a declared ``Content-Length`` over the cap before the body is read."""
    try:
        length = int(content_length) if content_length else None
    except ValueError:
        return  # the host answers a malformed length itself; the body's size is checked once read
    if length is not None and length > MAX_EVENT_BYTES:
        raise EventTooLarge(f"the body is {length} bytes; a Partner Center event is at most {MAX_EVENT_BYTES}")


def receive_event(account_id: str, headers: Mapping[str, str], body: bytes, *, verifier: SignatureVerifier,
                  events: WebhookEventStore, max_age: timedelta = timedelta(days=7),
                  now: datetime | None = None) -> tuple[StoredEvent, bool]:
    """Verify and store one delivery; returns the stored event and whether it is new.

    Raises :class:`EventTooLarge`, :class:`~shared.webhooks.signature.SignatureRejected`,
    :class:`~shared.webhooks.events.InvalidEvent` or :class:`EventNotStored`; a Table Storage
    failure propagates (the sender gets a 5xx and delivers again).
    """
    if len(body) > MAX_EVENT_BYTES:
        raise EventTooLarge(f"the body is {len(body)} bytes; a Partner Center event is at most {MAX_EVENT_BYTES}")
    verifier.verify(headers, body)
    event = parse_event(body)
    if event.event_name == TEST_CREATED:
        raise EventNotStored(event.event_name, TEST_EVENT,
                             "a test event: verified and acknowledged, not stored")
    if event.event_name not in RELATIONSHIP_EVENTS:
        raise EventNotStored(event.event_name, UNHANDLED,
                             f"{event.event_name[:80]!r} is not an event this service handles; not stored")
    age = (now or datetime.now(timezone.utc)) - event.changed_at
    if age > max_age:
        raise EventNotStored(event.event_name, STALE,
                             f"the event changed {age.days} days ago, over the {max_age.days}-day window "
                             "(WEBHOOK_MAX_EVENT_AGE_DAYS); not stored, the sync runs cover its customer")
    return events.accept(account_id, event, body)
