"""Turning stored webhook events into organizations: at once after they arrive, and again from
the incremental run for anything left pending.

Processing an event is the on-demand sync of its customer (one Partner Center call that also
brings the billing profile and the indirect reseller, ETag-guarded and idempotent), so running
it twice for one event, or for two events about one customer, writes the organization once.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from shared.partner_center import AuthenticationError
from shared.settings import Settings, get_settings
from shared.sync.engine import AccountSync
from shared.sync.service import account_sync, stores_for
from shared.sync.stores import SyncStores

from .store import FAILED, MAX_ATTEMPTS, PENDING, PROCESSED, StoredEvent, WebhookEventStore

log = logging.getLogger(__name__)

_STATUS_LIMIT = 50
_stores: dict[str, WebhookEventStore] = {}
_stores_lock = threading.Lock()


def event_store_for(settings: Settings) -> WebhookEventStore:
    """The event inbox on the configured storage, opened (and its table created) once per process."""
    connection = settings.require_storage()
    with _stores_lock:
        store = _stores.get(connection)
        if store is None:
            store = _stores[connection] = WebhookEventStore.open(connection)
        return store


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


def process_pending_events(settings: Settings | None = None, stores: SyncStores | None = None, *,
                           events: WebhookEventStore | None = None, account_id: str | None = None,
                           sync_for: Callable[[str], AccountSync] | None = None,
                           deadline: float | None = None) -> dict[str, int]:
    """Process every pending webhook event of every configured account (or one); the
    incremental run calls this to drain what the receiver could not finish.

    Returns counts: ``processed``, ``failed`` (attempts that failed this time), ``pending``
    (still pending afterwards), ``skipped`` (events of accounts whose credentials are missing).
    ``deadline`` (a ``time.monotonic()`` value): no event is started after it; the rest wait.
    """
    settings = settings or get_settings()
    events = events or event_store_for(settings)
    counts = {"processed": 0, "failed": 0, "pending": 0, "skipped": 0}
    accounts = [settings.account(account_id)] if account_id else list(settings.accounts)
    for account in accounts:
        pending = list(events.with_status(account.id, PENDING))
        if not pending:
            continue
        try:
            sync = sync_for(account.id) if sync_for else account_sync(account, settings, stores or stores_for(settings))
        except AuthenticationError as exc:
            log.error("account %s: %d webhook events wait: %s", account.id, len(pending), exc)
            counts["skipped"] += len(pending)
            continue
        for event in pending:
            if deadline is not None and time.monotonic() >= deadline:
                counts["pending"] += 1
                continue
            current = events.get(account.id, event.key)  # the receiver may have finished it meanwhile
            if current is None or current.status != PENDING:
                continue
            status = process_event(events, sync, current)
            if status == PROCESSED:
                counts["processed"] += 1
            else:
                counts["failed"] += 1
                counts["pending"] += status == PENDING
    return counts


def webhook_status(account_id: str, settings: Settings | None = None,
                   events: WebhookEventStore | None = None) -> dict:
    """The account's pending and failed webhook events (up to 50 of each), for status pages."""
    settings = settings or get_settings()
    events = events or event_store_for(settings)
    return {
        "account": account_id,
        "pending": [event.as_dict() for event in events.with_status(account_id, PENDING, top=_STATUS_LIMIT)],
        "failed": [event.as_dict() for event in events.with_status(account_id, FAILED, top=_STATUS_LIMIT)],
    }


class BackgroundProcessing:
    """Processes just-accepted events on a few worker threads, so the sender gets its answer at
    once. Work lost to a recycled instance stays pending in the table for the next drain."""

    def __init__(self, workers: int = 4) -> None:
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: set[tuple[str, str]] = set()
        self._futures: set = set()
        self._lock = threading.Lock()

    def submit(self, settings: Settings, account_id: str, key: str) -> None:
        """Process the stored event ``key`` of ``account_id`` soon (once, even if submitted twice)."""
        with self._lock:
            if (account_id, key) in self._in_flight:
                return
            self._in_flight.add((account_id, key))
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="webhook-event")
            future = self._pool.submit(self._process, settings, account_id, key)
            self._futures.add(future)
        future.add_done_callback(self._forget)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the work submitted so far; False if some is still running after ``timeout``."""
        with self._lock:
            futures = list(self._futures)
        for future in futures:
            try:
                future.result(timeout)
            except Exception:
                return False
        return True

    def _process(self, settings: Settings, account_id: str, key: str) -> None:
        try:
            events = event_store_for(settings)
            event = events.get(account_id, key)
            if event is not None and event.status == PENDING:
                process_event(events, account_sync(settings.account(account_id), settings, stores_for(settings)), event)
        except Exception:  # the event stays pending; process_pending_events retries it
            log.exception("webhook event %s/%s: background processing failed", account_id, key)
        finally:
            with self._lock:
                self._in_flight.discard((account_id, key))

    def _forget(self, future) -> None:
        with self._lock:
            self._futures.discard(future)


background = BackgroundProcessing()
