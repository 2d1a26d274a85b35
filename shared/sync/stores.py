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

    @classmethod
    def open(cls, connection: StorageConnection | str, names: TableNames | None = None, *,
             quarantine_after: int = 5, create: bool = True) -> "SyncStores":
        """Open every table (creating missing ones, which is idempotent and cheap).

        ``connection``: a :class:`StorageConnection` (``App.storage``) or a connection string.
        """
        tables = Tables(connection, names)
        if create:
            tables.create_all()
        return cls(
            tables=tables,
            organizations=OrganizationStore(tables),
            state=SyncState(tables),
            runs=RunLog(tables),
            changes=ChangeLog(tables),
            failures=FailureLedger(tables, quarantine_after=quarantine_after),
            held=HeldEndings(tables),
            walk=ReconciliationWalk(tables),
            settled=Settled(tables),
        )
