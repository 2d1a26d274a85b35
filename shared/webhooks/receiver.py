"""Receiving one webhook delivery: size, signature, payload, then durable storage.

Nothing is parsed before the signature holds, and nothing is stored unless every check passed;
once :func:`receive_event` returns, the event is in the table and may be acknowledged.
"""

from __future__ import annotations

from typing import Mapping

from .events import MAX_EVENT_BYTES, parse_event
from .signature import SignatureVerifier
from .store import StoredEvent, WebhookEventStore

class EventTooLarge(ValueError):
    """The body is over :data:`MAX_EVENT_BYTES`."""


def receive_event(account_id: str, headers: Mapping[str, str], body: bytes, *, verifier: SignatureVerifier,
                  events: WebhookEventStore) -> tuple[StoredEvent, bool]:
    """Verify and store one delivery; returns the stored event and whether it is new.

    Raises :class:`EventTooLarge`, :class:`~shared.webhooks.signature.SignatureRejected` or
    :class:`~shared.webhooks.events.InvalidEvent`; a Table Storage failure propagates (the
    sender gets a 5xx and delivers again).
    """
    if len(body) > MAX_EVENT_BYTES:
        raise EventTooLarge(f"the body is {len(body)} bytes; a Partner Center event is at most {MAX_EVENT_BYTES}")
    verifier.verify(headers, body)
    event = parse_event(body)
    return events.accept(account_id, event, body)
