"""Publishing the outbox (docs/events.md): every stored change reaches the topic at least once, in
Version order per organization, within the invocation's deadline.

A pass reads what waits in an account's outbox, keeps only changes whose organization write landed
(the row's Version reached theirs: a change still being written, or one that never will be, waits
for its writer or for the run that settles it), sends them in batches and deletes each batch's rows
once the topic accepted it. A refused batch stops the pass: its events and everything after them
wait for the next pass, so nothing is lost and no organization's later change overtakes an earlier
one. Many instances may publish at once: an event may then go out twice, with the same id.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Iterable, Sequence

from shared import telemetry
from shared.store.organizations import CREATE, OrganizationStore
from shared.store.outbox import EventOutbox, PendingChange

from .cloud import cloud_event, organization_as_left, organization_created
from .topic import Topic, TopicRefused, batches

log = logging.getLogger(__name__)

# Changes read per round: a round's organizations are read with point reads up to POINT_READS, else
# with one query of the rows in its tenant range written since its oldest change.
ROUND = 1000
POINT_READS = 100
# Below this many seconds left the pass stops: a request it starts must finish inside the invocation.
MIN_SECONDS = 3.0
REQUEST_SECONDS = 30.0
# A running run's publisher holds its packs at most this long (functionTimeout is 10 minutes).
HELD_AT_MOST_SECONDS = 15 * 60
_LANDING_COLUMNS = ("RowKey", "Version", "LastChangedAt")


@dataclass
class Publishing:
    """What one pass did for one account."""

    account_id: str
    published: int = 0
    waiting: int = 0
    oldest_waiting: datetime | None = None
    error: str | None = None
    dropped: int = 0  # superseded rows of writes that never landed

    def as_dict(self) -> dict:
        return {"account": self.account_id, "published": self.published, "waiting": self.waiting,
                "oldestWaiting": self.oldest_waiting.isoformat() if self.oldest_waiting else None,
                "error": self.error}


@dataclass
class _Ready:
    events: list[dict] = field(default_factory=list)
    rows: list[PendingChange] = field(default_factory=list)
    dropped: list[PendingChange] = field(default_factory=list)


def publish(outbox: EventOutbox, organizations: OrganizationStore, topic: Topic, account_ids: Iterable[str],
            time_left: Callable[[], float], now: Callable[[], datetime] | None = None,
            running: Callable[[str], Iterable[str]] = lambda account_id: ()) -> list[Publishing]:
    """One pass over each account; stops at the first account the topic refuses (it is the topic's
    fault, not the account's) or when the time is up. Records the publishing lag per account.
    ``running(account id)``: the ids of its runs still running (their packs are their publishers')."""
    now = now or (lambda: datetime.now(timezone.utc))
    reports = []
    refused = None
    for account_id in account_ids:
        report = Publishing(account_id)
        if refused is None and time_left() > MIN_SECONDS:
            blocked = unpack(outbox, account_id, running, now())
            refused = _publish_account(outbox, organizations, topic, report, time_left, blocked)
        elif refused is not None:
            report.error = refused
        report.waiting, report.oldest_waiting = outbox.waiting(account_id)
        lag = (now() - report.oldest_waiting).total_seconds() if report.oldest_waiting else 0.0
        telemetry.record_publishing(account_id, report.published, max(0.0, lag))
        reports.append(report)
    return reports


def unpack(outbox: EventOutbox, account_id: str, running: Callable[[str], Iterable[str]], now: datetime) -> set[str]:
    """Unpack the account's packs that no publisher holds any more (their run is over, or they are
    older than any invocation: a run that died); returns the organizations of the rest, whose later
    changes wait behind them (their publisher sends their ``created`` events first)."""
    found = outbox.packs(account_id)
    if not found:
        return set()
    live = set(running(account_id))
    held: set[str] = set()
    for pack in found:
        if pack.run_id in live and (now - pack.at).total_seconds() < HELD_AT_MOST_SECONDS:
            held |= pack.tenant_ids
        else:
            outbox.unpack(account_id, pack.row_key)
    return held


def _publish_account(outbox: EventOutbox, organizations: OrganizationStore, topic: Topic, report: Publishing,
                     time_left: Callable[[], float], held: set[str]) -> str | None:
    """Publish one account's outbox, but the changes of organizations ``held`` in a running run's
    packs; returns why the topic refused, when it did."""
    account_id = report.account_id
    while time_left() > MIN_SECONDS:
        pending = outbox.pending(account_id, limit=ROUND)
        if not pending:
            return None
        if len(pending) >= ROUND:
            pending = _whole_organizations(pending)
        pending = [p for p in pending if p.tenant_id not in held]
        ready = ready_events(account_id, pending, stored_rows(organizations, account_id, pending))
        if ready.dropped:
            report.dropped += outbox.remove(account_id, ready.dropped)
        if not ready.events:
            return None  # what waits is still being written, or waits for its run to be settled
        sent = 0
        for batch in batches(ready.events):
            if time_left() <= MIN_SECONDS:
                return None
            try:
                topic.send(batch, timeout=min(REQUEST_SECONDS, time_left() - 1))
            except TopicRefused as exc:
                report.error = str(exc)
                log.warning("account %s: events not published, the next pass tries again: %s", account_id, exc)
                return str(exc)
            outbox.remove(account_id, ready.rows[sent:sent + len(batch)])
            sent += len(batch)
            report.published += len(batch)
    return None


def ready_events(account_id: str, pending: Sequence[PendingChange], rows: dict[str, dict]) -> _Ready:
    """The events of the changes that landed, in Version order per organization; rows superseded
    by another write of the same Version (a writer that died before its write) are dropped."""
    ready = _Ready()
    by_tenant: dict[str, list[PendingChange]] = defaultdict(list)
    for change in pending:
        by_tenant[change.tenant_id].append(change)
    for tenant_id, changes in by_tenant.items():
        row = rows.get(tenant_id)
        if row is None:
            continue
        stored_version, stored_at = int(row.get("Version") or 0), row.get("LastChangedAt")
        landed: list[PendingChange] = []
        for version in sorted({c.version for c in changes}):
            same = [c for c in changes if c.version == version]
            if version > stored_version:
                break  # not stored (yet): neither it nor anything after it goes out
            if version == stored_version:
                winner = next((c for c in same if c.at == stored_at), None)
                if winner is None:
                    # Stored by a write with no row here: these lost to it (and their writers, if
                    # alive, are deciding again under a new Version).
                    ready.dropped.extend(same)
                    break
            else:
                winner = max(same, key=lambda c: c.at)
            landed.append(winner)
            ready.dropped.extend(c for c in same if c is not winner)
        for index, change in enumerate(landed):
            if change.kind == CREATE:
                organization = organization_created(change.at, change.version, change.changes)
            else:
                later = [c.changes for c in reversed(landed[index + 1:])]
                organization = organization_as_left(row, change.at, change.version, later)
            ready.events.append(cloud_event(account_id, tenant_id, change.kind, change.at, change.version,
                                            change.changes, organization))
            ready.rows.append(change)
    return ready


def _whole_organizations(pending: list[PendingChange]) -> list[PendingChange]:
    """A round cut at :data:`ROUND` rows may split the last organization's changes: leave that one
    to the next round, so an event's organization is rebuilt from all its later changes."""
    last = pending[-1].tenant_id
    whole = [p for p in pending if p.tenant_id != last]
    return whole or pending


def stored_rows(organizations: OrganizationStore, account_id: str,
                pending: Sequence[PendingChange]) -> dict[str, dict]:
    """The stored organizations of ``pending``: whole rows where an event needs them (every change but
    a create, whose event is built from its own change), else only what tells whether it landed."""
    tenants = sorted({p.tenant_id for p in pending})
    whole = sorted({p.tenant_id for p in pending if p.kind != CREATE})
    if len(tenants) <= POINT_READS:
        return {t: row for t in tenants if (row := organizations.get(account_id, t)) is not None}
    since = min(p.at for p in pending)
    rows = organizations.rows_changed_since(account_id, since, tenants[0], tenants[-1], select=_LANDING_COLUMNS)
    if len(whole) <= POINT_READS:
        rows.update({t: row for t in whole if (row := organizations.get(account_id, t)) is not None})
    else:
        rows.update(organizations.rows_changed_since(account_id, since, whole[0], whole[-1]))
    return {t: rows[t] for t in tenants if t in rows}
