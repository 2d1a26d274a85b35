"""Replay (docs/events.md): the change log from a date published again, with the ids the events
had the first time, for a Platform that subscribed late or lost its copy."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from shared.store.changes import ChangeLog
from shared.store.organizations import OrganizationStore
from shared.store.outbox import PendingChange

from .publisher import MIN_SECONDS, REQUEST_SECONDS, ready_events, stored_rows
from .topic import Topic, batches


class ReplayStopped(Exception):
    """The time ran out before every event was sent; ``sent`` were."""

    def __init__(self, sent: int) -> None:
        super().__init__(f"the time ran out after {sent} event(s); replay again from the same date")
        self.sent = sent


def replay(changes: ChangeLog, organizations: OrganizationStore, topic: Topic, account_id: str, since: datetime,
           time_left: Callable[[], float]) -> tuple[int, int]:
    """Send every stored change of the account logged at or after ``since``; ``(sent, skipped)``,
    skipped being entries logged before organizations had a Version (they have no event id).
    Raises :class:`~shared.events.topic.TopicRefused` when the topic refuses a batch."""
    entries = changes.since(account_id, since)
    pending = [PendingChange(e.tenant_id, e.run_id, e.kind, e.at, e.version, e.changes) for e in entries if e.version]
    pending.sort(key=lambda p: (p.tenant_id, p.version, p.at))
    ready = ready_events(account_id, pending, stored_rows(organizations, account_id, pending) if pending else {})
    sent = 0
    for batch in batches(ready.events):
        if time_left() <= MIN_SECONDS:
            raise ReplayStopped(sent)
        topic.send(batch, timeout=min(REQUEST_SECONDS, time_left() - 1))
        sent += len(batch)
    return sent, len(entries) - len(pending)
