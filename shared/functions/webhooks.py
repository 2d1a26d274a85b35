"""Partner Center webhook receiver (docs/webhooks.md): ``POST /api/partner-center/events/{accountId}``.

Anonymous at the Functions level: authenticity comes from the event's signature. The trigger
hands the raw body to :func:`shared.webhooks.receiver.receive_event`, puts a message naming the
stored event on the ``webhook-events`` queue, and answers 200. An authentic event the service does
not keep (a test event, a name it does not handle, a relationship event older than
``WEBHOOK_MAX_EVENT_AGE_DAYS``) is answered 200 too, saying it was not stored and why. The queue trigger
(``webhook_events.py``) does the processing inside an invocation of its own; nothing runs here
after the answer.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import azure.functions as func
from azure.core.exceptions import AzureError

from shared import app, telemetry
from shared.settings import SettingsError
from shared.webhooks import signature
from shared.webhooks.events import InvalidEvent
from shared.webhooks.queue import EventMessage
from shared.webhooks.receiver import EventNotStored, EventTooLarge, check_length, receive_event
from shared.webhooks.signature import SignatureRejected
from shared.webhooks.store import PENDING

from .problems import TYPE_PREFIX, Problem, answers_with_problems, json_response

bp = func.Blueprint()
log = logging.getLogger(__name__)

# Each refusal: HTTP status and title. The reason names are the problem types' last segment.
_REFUSALS = {
    signature.SIGNATURE_MISSING: (401, "The event is not signed"),
    signature.SIGNATURE_INVALID: (401, "The event's signature is not valid"),
    signature.ALGORITHM_UNSUPPORTED: (400, "The signature algorithm is not supported"),
    signature.CERTIFICATE_URL_REFUSED: (403, "The signing certificate's URL is not allowed"),
    signature.CERTIFICATE_UNTRUSTED: (403, "The signing certificate is not trusted"),
    # Our side could not check: the sender should deliver again later.
    signature.CERTIFICATE_UNAVAILABLE: (503, "The signing certificate could not be fetched"),
    "invalid-event": (400, "The body is not a Partner Center event"),
}


class EventProblem(Problem):
    """A refused delivery, as problem+json with the webhook's own problem types."""

    def __init__(self, reason: str, detail: str, *, errors: list[dict] | None = None) -> None:
        status, self.title = _REFUSALS[reason]
        headers = {"Retry-After": "30"} if status == 503 else None
        super().__init__(status, reason, detail, errors=errors, headers=headers)

    def as_dict(self) -> dict:
        body = {"type": TYPE_PREFIX + self.kind, "title": self.title, "status": self.status, "detail": self.detail}
        if self.errors:
            body["errors"] = self.errors
        return body


@bp.function_name("receive_partner_center_event")
@bp.route(route="partner-center/events/{accountId}", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@answers_with_problems
def receive_partner_center_event(req: func.HttpRequest) -> func.HttpResponse:
    """Verify a Partner Center event, store it, answer 200, then sync its customer."""
    wired = app.current()
    account_id = req.route_params.get("accountId", "")
    if account_id not in {account.id for account in wired.settings.accounts}:
        raise Problem(404, "not-found", f"no Partner Center account {account_id[:64]!r} is configured")
    try:
        check_length(req.headers.get("Content-Length"))  # before the body is read
        body = req.get_body() or b""
        stored, new = receive_event(account_id, req.headers, body, verifier=wired.verifier, events=wired.events,
                                    max_age=timedelta(days=wired.settings.webhook_max_event_age_days))
    except EventTooLarge as exc:
        raise Problem(413, "body-too-large", str(exc)) from None
    except EventNotStored as exc:
        # Authentic, so answered 200: Partner Center would only deliver it again.
        log.info("webhook event %s for %s not stored (%s): %s", exc.event_name, account_id, exc.reason, exc.detail)
        telemetry.record_event_not_stored(account_id, exc.reason)
        return json_response({"eventName": exc.event_name, "stored": False, "reason": exc.reason,
                              "detail": exc.detail})
    except SignatureRejected as exc:
        raise EventProblem(exc.reason, exc.detail) from None
    except InvalidEvent as exc:
        if exc.not_json:
            raise Problem(400, "invalid-json", str(exc)) from None
        raise EventProblem("invalid-event", str(exc), errors=[{"pointer": exc.pointer, "detail": str(exc)}]) from None
    queued = False
    if stored.status == PENDING:
        # Also for a repeated delivery of a pending event: the sender's retry is a retry for us too.
        queued = _enqueue(wired, account_id, stored.key)
    return json_response({"event": stored.key, "eventName": stored.event_name, "stored": True,
                          "status": stored.status, "duplicate": not new, "queued": queued})


def _enqueue(wired: app.App, account_id: str, key: str) -> bool:
    """Queue the stored event for the trigger; False (logged) when the queue cannot take it.

    The event is already stored, so the sender gets its 200 either way: the incremental run's
    drain of pending events picks up what the queue missed.
    """
    try:
        wired.event_queue.send(EventMessage(account_id, key, trace_context=telemetry.inject_context()))
    except (AzureError, SettingsError) as exc:
        log.error("webhook event %s/%s is stored but could not be queued (the incremental run will process it): %s",
                  account_id, key, exc)
        return False
    return True
