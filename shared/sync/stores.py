"""The stores one sync works with, opened together on one storage connection."""

from __future__ import annotations

from dataclasses import dataclass

from shared.store import (
    ChangeLog,
    FailureLedger,
    HeldEndings,
    OrganizationStore,
    ReconciliationWalk,
    RunLog,
    SyncState,
    TableNames,
    Tables,
)
from shared.store.connections import StorageConnection
from shared.store.outbox import EventOutbox, OutboxChangeLog
from shared.store.settled import Settled


@dataclass
class SyncStores:
    tables: Tables
    organizations: OrganizationStore
    state: SyncState
    runs: RunLog
    changes: ChangeLog
    failures: FailureLedger
    held: HeldEndings
    walk: ReconciliationWalk
    settled: Settled
    # The event outbox (docs/events.md): filled with the change log only when events are configured.
    outbox: EventOutbox | None = None

    @classmethod
    def open(cls, connection: StorageConnection | str, names: TableNames | None = None, *,
             quarantine_after: int = 5, create: bool = True, events: bool = False) -> "SyncStores":
        """Open every table (creating missing ones, which is idempotent and cheap).

        ``connection``: a :class:`StorageConnection` (``App.storage``) or a connection string.
        ``events``: every change logged also waits in the event outbox until published.
        """
        tables = Tables(connection, names)
        if create:
            tables.create_all()
        outbox = EventOutbox(tables) if events else None
        return cls(
            tables=tables,
            organizations=OrganizationStore(tables),
            state=SyncState(tables),
            runs=RunLog(tables),
            changes=OutboxChangeLog(tables, outbox) if outbox else ChangeLog(tables),
            failures=FailureLedger(tables, quarantine_after=quarantine_after),
            held=HeldEndings(tables),
            walk=ReconciliationWalk(tables),
            settled=Settled(tables),
            outbox=outbox,
        )
