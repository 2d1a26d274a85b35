"""Turning stored webhook events into organizations: from the ``webhook-events`` queue trigger
at once, and from the incremental run for anything left pending.

Processing an event is the on-demand sync of its customer (one Partner Center call that also
brings the billing profile and the indirect reseller, ETag-guarded and idempotent), so running
it twice for one event, or for two events about one customer, writes the organization once.

Nothing here builds a sync or opens a store: the caller (``shared/app.py`` wires them) hands in
``sync_for(account_id)``, the event store and the queue.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from shared import telemetry
from shared.partner_center import AuthenticationError
from shared.settings import Settings
from shared.sync.engine import AccountSync
from shared.sync.run import InvocationFailed

from .queue import EVENT_QUEUE, POISON_QUEUE, EventMessage, EventQueue, MalformedEventMessage
from .store import FAILED, MAX_ATTEMPTS, PENDING, PROCESSED, StoredEvent, WebhookEventStore

log = logging.getLogger(__name__)

SyncFor = Callable[[str], AccountSync]
PARKED = "parked"
_STATUS_LIMIT = 50


def process_event(events: WebhookEventStore, sync: AccountSync, event: StoredEvent) -> str:
    """Sync the event's customer and record the outcome on the event; returns its new status.

    A failed sync leaves the event pending with its attempt count and error (``failed`` after
    the last attempt). An event that is no longer pending is left alone.
    """
    if event.status != PENDING or not event.customer_tenant_id:
        return event.status
    try:
        result, _ = sync.customer(event.customer_tenant_id)
    except Exception as exc:  # recorded on the event; the next drain retries it
        log.exception("webhook event %s/%s: processing raised", event.account_id, event.key)
        return _attempt_failed(events, event, f"{type(exc).__name__}: {exc}")
    if result.outcome == "failed":
        return _attempt_failed(events, event, result.error or f"run {result.run_id} failed")
    events.mark_processed(event, result.run_id)
    log.info("webhook event %s/%s: customer %s synced (%s)", event.account_id, event.key,
             event.customer_tenant_id, result.counts.as_dict())
    return PROCESSED


def _attempt_failed(events: WebhookEventStore, event: StoredEvent, error: str) -> str:
    events.mark_attempt_failed(event, error)
    log.warning("webhook event %s/%s (customer %s): attempt %d failed: %s", event.account_id, event.key,
                event.customer_tenant_id, event.attempts + 1, error)
    return FAILED if event.attempts + 1 >= MAX_ATTEMPTS else PENDING


def process_queued_event(body: bytes, *, message_id: str, dequeue_count: int, max_dequeue_count: int,
                         sync_for: SyncFor, settings: Settings, events: WebhookEventStore, queue: EventQueue) -> str:
    """Process one ``webhook-events`` message; returns what became of it.

    ``"parked"`` (malformed, for an account that is not configured, or naming no stored event:
    retrying cannot help, so it goes to ``webhook-events-poison`` at once with a log line saying
    why), ``"processed"``, or the event's status when it was no longer pending (a redelivery, or
    the drain got there first: nothing to do). A failed sync raises :class:`~shared.sync.run.InvocationFailed`
    so the runtime retries the message; after ``maxDequeueCount`` attempts the runtime poisons it,
    and the event stays pending in the table for the incremental run's drain.
    """
    try:
        message = EventMessage.parse(body)
    except MalformedEventMessage as exc:
        return _park(body, message_id, f"malformed event message: {exc}", queue)
    if message.account_id not in {account.id for account in settings.accounts}:
        return _park(body, message_id, f"event message for account {message.account_id}, which is not configured",
                     queue)
    with telemetry.webhook_processing_span(message.account_id, message.trace_context, EVENT_QUEUE):
        return _process_message(message, body, message_id, dequeue_count, max_dequeue_count, sync_for, events,
                                queue)


def _process_message(message, body, message_id, dequeue_count, max_dequeue_count, sync_for, events, queue) -> str:
    event = events.get(message.account_id, message.event_key)
    if event is None:
        return _park(body, message_id, f"event message for account {message.account_id} names no stored event",
                     queue)
    if event.status != PENDING:
        log.info("webhook event %s/%s is already %s: message %s acknowledged", event.account_id, event.key,
                 event.status, message_id)
        return event.status
    try:
        sync = sync_for(message.account_id)
    except AuthenticationError as exc:
        raise InvocationFailed(f"webhook event {event.account_id}/{event.key}: {exc}") from exc
    status = process_event(events, sync, event)
    if status in (PROCESSED, FAILED):  # failed: gave up after MAX_ATTEMPTS; the reconciliation covers it
        return status
    current = events.get(event.account_id, event.key)
    error = current.last_error if current else "the event was deleted meanwhile"
    last = dequeue_count >= max_dequeue_count
    if last:
        log.error("webhook event %s/%s: message %s failed %d times and goes to %s; the event stays %s for the "
                  "incremental run: %s", event.account_id, event.key, message_id, dequeue_count, POISON_QUEUE,
                  current.status if current else "gone", error)
    raise InvocationFailed(f"webhook event {event.account_id}/{event.key} (customer {event.customer_tenant_id}): "
                                f"attempt {dequeue_count} of {max_dequeue_count} failed: {error}")


def _park(body: bytes, message_id: str, reason: str, queue: EventQueue) -> str:
    parked_id = queue.park(body)
    log.error("%s: message %s parked in %s as %s (retrying cannot help)", reason, message_id, POISON_QUEUE,
              parked_id)
    return PARKED


def process_pending_events(settings: Settings, events: WebhookEventStore, *, sync_for: SyncFor,
                           account_id: str | None = None, deadline: float | None = None) -> dict[str, int]:
    """Process every pending webhook event of every configured account (or one); the
    incremental run calls this to drain what the queue trigger could not finish.

    ``sync_for(account_id)`` builds the account's sync. ``deadline``, a
    ``time.monotonic()`` value, stops the drain from taking further events once it is reached,
    so the run after it keeps its time budget; what is left stays pending.

    Returns counts: ``processed``, ``failed`` (attempts that failed this time), ``pending``
    (still pending afterwards, including events left at the deadline), ``skipped`` (events of
    accounts whose credentials are missing).
    """
    counts = {"processed": 0, "failed": 0, "pending": 0, "skipped": 0}
    accounts = [settings.account(account_id)] if account_id else list(settings.accounts)
    for account in accounts:
        pending = list(events.with_status(account.id, PENDING))
        if not pending:
            continue
        if _past(deadline):
            counts["pending"] += len(pending)
            continue
        try:
            sync = sync_for(account.id)
        except AuthenticationError as exc:
            log.error("account %s: %d webhook events wait: %s", account.id, len(pending), exc)
            counts["skipped"] += len(pending)
            continue
        for index, event in enumerate(pending):
            if _past(deadline):
                left = len(pending) - index
                counts["pending"] += left
                log.info("account %s: drain reached its deadline; %d webhook events stay pending", account.id, left)
                break
            current = events.get(account.id, event.key)  # the queue trigger may have finished it meanwhile
            if current is None or current.status != PENDING:
                continue
            status = process_event(events, sync, current)
            if status == PROCESSED:
                counts["processed"] += 1
            else:
                counts["failed"] += 1
                counts["pending"] += status == PENDING
    return counts


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def webhook_status(events: WebhookEventStore, account_id: str) -> dict:
    """The account's pending and failed webhook events (up to 50 of each), for status pages."""
    return {
        "account": account_id,
        "pending": [event.as_dict() for event in events.with_status(account_id, PENDING, top=_STATUS_LIMIT)],
        "failed": [event.as_dict() for event in events.with_status(account_id, FAILED, top=_STATUS_LIMIT)],
    }


def poison_events(queue: EventQueue, events: WebhookEventStore, configured: set[str]) -> list[dict]:
    """The messages waiting in ``webhook-events-poison`` (the oldest 32), for status pages.

    Each: ``messageId``, ``poisonedAt``, and either ``account``, ``event`` and ``problem`` (the
    event's last error, or what else is wrong) or, for a malformed message, only ``problem``
    (what is wrong with it; its content is not repeated).
    """

    def describe(body: bytes) -> dict:
        try:
            parsed = EventMessage.parse(body)
        except MalformedEventMessage as exc:
            return {"problem": f"malformed event message: {exc}"}
        if parsed.account_id not in configured:
            problem = f"account {parsed.account_id} is not configured"
        else:
            problem = _poison_reason(events.get(parsed.account_id, parsed.event_key))
        return {"account": parsed.account_id, "event": parsed.event_key, "problem": problem}

    return queue.poison_messages(describe, at="poisonedAt")


def _poison_reason(event: StoredEvent | None) -> str:
    if event is None:
        return "no such stored event"
    if event.status == PENDING:
        return (f"its sync failed on every attempt ({event.attempts} so far; the incremental run retries it): "
                f"{event.last_error}")
    return f"the event is {event.status} now: {event.last_error or 'nothing left to do'}"
