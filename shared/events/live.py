"""Publishing while a run goes on (docs/events.md): the write path hands over each page's stored new
organizations, and a background thread sends their ``created`` events and deletes their outbox rows,
so the publishing overlaps the next pages' Partner Center calls instead of following the run.

Only ``created`` events (Version 1) go out here: nothing of the organization can be waiting before
them, so sending them at once keeps each organization's events in Version order; an event's data is
its own change, as the pass builds it. Everything else, and whatever this thread could not send (the
topic refused, the time ran short, the process died), waits in the outbox for the pass after the
run: the new organizations of a page wait in packs (``shared/store/outbox_packs.py``) written before
their organizations, and a pack is deleted here only after the topic accepted all its events.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Callable

from shared.store.organizations import CREATE
from shared.store.outbox import EventOutbox, OutboxChangeLog, PendingChange

from .cloud import cloud_event, organization_created
from .publisher import MIN_SECONDS, REQUEST_SECONDS
from .topic import Topic, batches

log = logging.getLogger(__name__)


class LivePublisher:
    """Listens to an outbox change log for a run's stored writes; :meth:`close` waits for what it was
    handed, within the deadline, and stops listening."""

    def __init__(self, changes: OutboxChangeLog, outbox: EventOutbox, topic: Topic,
                 time_left: Callable[[], float]) -> None:
        self._changes, self._outbox, self._topic, self._time_left = changes, outbox, topic, time_left
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="events-live", daemon=True)
        self.published = 0
        self.error: str | None = None  # why it stopped sending: the rest waits for the pass

    def __enter__(self) -> "LivePublisher":
        self._thread.start()
        self._changes.listen(self._stored)
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._changes.stop_listening(self._stored)
        self._queue.put(None)
        self._thread.join(max(0.0, self._time_left() - MIN_SECONDS))
        if self._thread.is_alive():
            self.error = self.error or "out of time"

    def _stored(self, account_id: str, rows: list[PendingChange]) -> None:
        created = [row for row in rows if row.kind == CREATE and row.version == 1 and row.etag]
        if created and self.error is None:
            self._queue.put((account_id, created))

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._publish(*item)
                except Exception as exc:  # storage or the topic: the outbox keeps every row for the pass
                    self.error = f"{type(exc).__name__}: {exc}"
                    log.warning("events not published during the run, the pass after it sends them: %s", exc)

    def _publish(self, account_id: str, rows: list[PendingChange]) -> None:
        events = [cloud_event(account_id, row.tenant_id, CREATE, row.at, row.version, row.changes,
                              organization_created(row.at, row.version, row.changes)) for row in rows]
        for batch in batches(events):
            if self._time_left() <= MIN_SECONDS:
                self.error = "out of time"
                return
            self._topic.send(batch, timeout=min(REQUEST_SECONDS, self._time_left() - 1))
        # Only once all went: a pack goes whole (its rows wait for the pass otherwise).
        self._outbox.remove(account_id, rows)
        self.published += len(rows)
