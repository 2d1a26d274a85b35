"""Receiving one webhook delivery: size, signature, payload, then durable storage.

Nothing is parsed before the signature holds, and nothing is stored unless every check passed;
once :func:`receive_event` returns, the event is in the table and may be acknowledged.
"""

from __future__ import annotations

import threading
from typing import Mapping

from shared.settings import Settings

from .events import MAX_EVENT_BYTES, parse_event
from .signature import SignatureVerifier
from .store import StoredEvent, WebhookEventStore

_verifiers: dict[tuple, SignatureVerifier] = {}
_verifiers_lock = threading.Lock()


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


def verifier_for(settings: Settings) -> SignatureVerifier:
    """One verifier (and so one certificate cache) per trust configuration in this process."""
    config = (settings.webhook_certificate_hosts, settings.webhook_trust_anchors, settings.webhook_certificate_issuer)
    with _verifiers_lock:
        verifier = _verifiers.get(config)
        if verifier is None:
            verifier = _verifiers[config] = SignatureVerifier(*config)
        return verifier
