"""The sync's tables in Azure Table Storage: names, one service client, and the store's errors."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any, Callable, Iterable, Mapping, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableServiceClient, TableTransactionError, UpdateMode

# DEFAULT_RETRY is re-exported: the retry policy belongs to the client factory now.
from .connections import DEFAULT_RETRY, StorageConnection, as_connection  # noqa: F401

_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{2,62}")

MAX_BATCH = 100  # Table Storage's limit of operations per transaction
# A transaction's body must stay under 4 MiB; leave room for the multipart framing.
MAX_BATCH_BYTES = 3 * 1024 * 1024


class StoreError(RuntimeError):
    """A write to Table Storage failed; nothing after it was written.

    ``partition`` and ``batch`` say where; ``tenant_id`` names the entity the service blamed,
    when it said. The caller stops the run without moving its watermark.
    """

    def __init__(
        self,
        message: str,
        *,
        table: str,
        partition: str,
        batch: int | None = None,
        row_key: str | None = None,
        status_code: int | None = None,
        written: int = 0,
    ) -> None:
        super().__init__(message)
        self.table = table
        self.partition = partition
        self.batch = batch
        self.row_key = row_key
        self.status_code = status_code
        self.written = written


class ConcurrencyConflict(RuntimeError):
    """Someone else changed the row since it was read (ETag mismatch); re-read and decide again."""


@dataclass(frozen=True)
class TableNames:
    """The names of the sync's tables. ``organizations`` is the Platform's contract table."""

    organizations: str = "Organizations"
    sync_state: str = "SyncState"
    runs: str = "SyncRuns"
    changes: str = "OrganizationChanges"
    failures: str = "CustomerFailures"
    held: str = "HeldChanges"
    walk: str = "ReconciliationWalk"
    request_budget: str = "RequestBudget"  # the account's Partner Center request budget, shared by every instance
    tenant_index: str = "OrganizationTenants"
    run_index: str = "SyncRunsIndex"  # the run log's index rows: what runs, what was abandoned
    outbox: str = "EventOutbox"  # organization changes not yet published as events (docs/events.md)

    def __post_init__(self) -> None:
        for item in fields(self):
            name = getattr(self, item.name)
            if not _TABLE_NAME.fullmatch(name) or name.lower() == "tables":
                raise ValueError(f"table name {name!r} must be 3-63 letters or digits, starting with a letter")

    def with_prefix(self, prefix: str) -> "TableNames":
        """The same tables with ``prefix`` in front of every name (tests, side-by-side installs)."""
        return replace(self, **{item.name: prefix + getattr(self, item.name) for item in fields(self)})

    def all(self) -> tuple[str, ...]:
        return tuple(getattr(self, item.name) for item in fields(self))


class Tables:
    """One :class:`TableServiceClient` for the sync's tables, handing out a client per table."""

    def __init__(self, connection: StorageConnection | str, names: TableNames | None = None, **client_options) -> None:
        """``connection``: a :class:`StorageConnection` or a connection string; ``client_options`` go to azure-core."""
        self.names = names or TableNames()
        self.connection = as_connection(connection)
        self.service: TableServiceClient = self.connection.table_service(**client_options)
        self._clients: dict[str, TableClient] = {}

    def client(self, name: str) -> TableClient:
        """The client for table ``name`` (one of :attr:`names`), created once."""
        if name not in self._clients:
            self._clients[name] = self.service.get_table_client(name)
        return self._clients[name]

    @property
    def organizations(self) -> TableClient:
        return self.client(self.names.organizations)

    @property
    def sync_state(self) -> TableClient:
        return self.client(self.names.sync_state)

    @property
    def runs(self) -> TableClient:
        return self.client(self.names.runs)

    @property
    def changes(self) -> TableClient:
        return self.client(self.names.changes)

    @property
    def failures(self) -> TableClient:
        return self.client(self.names.failures)

    @property
    def held(self) -> TableClient:
        return self.client(self.names.held)

    @property
    def walk(self) -> TableClient:
        return self.client(self.names.walk)

    @property
    def tenant_index(self) -> TableClient:
        return self.client(self.names.tenant_index)

    @property
    def run_index(self) -> TableClient:
        return self.client(self.names.run_index)

    @property
    def outbox(self) -> TableClient:
        return self.client(self.names.outbox)

    def create_all(self) -> None:
        """Create every table that does not exist yet (safe to call on every start)."""
        for name in self.names.all():
            try:
                self.service.create_table(name)
            except ResourceExistsError:
                pass

    def delete_all(self) -> None:
        """Delete every table (tests and local resets; never called by the sync itself)."""
        for name in self.names.all():
            self.service.delete_table(name)

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()
        self.service.close()

    def __enter__(self) -> "Tables":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def submit_batches(table: TableClient, partition: str, operations: Sequence[tuple]) -> tuple[int, int]:
    """Submit ``operations`` (all in ``partition``) as transactions of at most 100 operations.

    Returns ``(transactions, operations)`` submitted. A failed transaction raises
    :class:`StoreError` naming the batch and the blamed row; the batches before it stay written.
    """
    transactions = written = 0
    for batch in batches(operations):
        try:
            table.submit_transaction(batch)
        except TableTransactionError as exc:
            row = batch[exc.index][1]["RowKey"] if 0 <= exc.index < len(batch) else None
            raise store_error(table, partition, transactions, exc, written, row) from exc
        except AzureError as exc:
            raise store_error(table, partition, transactions, exc, written, None) from exc
        transactions += 1
        written += len(batch)
    return transactions, written


def replace_if_unchanged(table: TableClient, entity: dict, current: Any) -> bool:
    """Write ``entity`` over ``current`` (the row as read, ``None`` when there was none): created if
    still absent, else replaced only if its ETag has not moved. ``False`` when another writer got
    there first: read again and decide again."""
    try:
        if current is None:
            table.create_entity(entity)
        else:
            table.update_entity(entity, mode=UpdateMode.REPLACE, etag=current.metadata["etag"],
                                match_condition=MatchConditions.IfNotModified)
        return True
    except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
        return False


def delete_rows(table: TableClient, partition: str, row_keys: Iterable[str]) -> int:
    """Delete the given rows of one partition in transactions; rows already gone are fine."""
    keys = list(row_keys)
    operations = [("delete", {"PartitionKey": partition, "RowKey": key}) for key in keys]
    try:
        submit_batches(table, partition, operations)
    except StoreError as exc:
        if exc.status_code != 404:
            raise
        # Someone deleted a row meanwhile; finish one by one (delete_entity ignores missing rows).
        for key in keys:
            table.delete_entity(partition, key)
    return len(keys)


def delete_found(table: TableClient, query_filter: str, parameters: Mapping[str, Any], *,
                 may_continue: Callable[[], bool], keep: Callable[[Mapping], bool] = lambda entity: False,
                 select: Sequence[str] = ()) -> tuple[int, bool]:
    """Delete the rows ``query_filter`` finds (but those ``keep`` keeps), at most 100 of one partition
    per transaction, asking ``may_continue()`` before each transaction and each page read; returns
    ``(deleted, finished)``. Resumable: a step that stops leaves whole transactions done, and the
    same query finds the rest.
    """
    query = table.query_entities(query_filter, parameters=dict(parameters),
                                 select=["PartitionKey", "RowKey", *select])
    deleted, partition, keys = 0, "", []
    for page in query.by_page():
        for entity in page:  # in key order: one partition after another
            if keep(entity):
                continue
            if keys and (entity["PartitionKey"] != partition or len(keys) == MAX_BATCH):
                if not may_continue():
                    return deleted, False
                deleted += delete_rows(table, partition, keys)
                keys = []
            partition = entity["PartitionKey"]
            keys.append(entity["RowKey"])
        if not may_continue():
            return deleted, False
    if keys:
        deleted += delete_rows(table, partition, keys)
    return deleted, True


def row_keys(table: TableClient, partition: str) -> list[str]:
    """Every RowKey of one partition (one query, RowKey column only)."""
    query = table.query_entities("PartitionKey eq @pk", parameters={"pk": partition}, select=["RowKey"])
    return [entity["RowKey"] for entity in query]


def batches(operations: Sequence[tuple]) -> Iterable[list[tuple]]:
    """``operations`` cut into transactions: at most 100 operations and 3 MiB each, in order."""
    batch: list[tuple] = []
    size = 0
    for operation in operations:
        estimate = _estimated_bytes(operation[1])
        if batch and (len(batch) == MAX_BATCH or size + estimate > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(operation)
        size += estimate
    if batch:
        yield batch


def _estimated_bytes(entity: dict) -> int:
    # UTF-8 JSON is at most ~3 bytes per UTF-16 code unit; this over-estimates, never under.
    return 512 + sum(len(str(name)) + 3 * len(str(value)) for name, value in entity.items())


def store_error(table, partition, batch, exc, written, row) -> StoreError:
    status = exc.status_code if isinstance(exc, HttpResponseError) else None
    reason = getattr(exc, "error_code", None) or type(exc).__name__
    blamed = f", row {row}" if row else ""
    return StoreError(
        f"{table.table_name}: transaction {batch} of partition {partition!r} failed"
        f" ({status or 'no response'} {reason}{blamed}); {written} operations were written before it",
        table=table.table_name,
        partition=partition,
        batch=batch,
        row_key=row,
        status_code=status,
        written=written,
    )
