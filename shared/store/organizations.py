"""The Organizations table (docs/storage.md, a contract the Platform reads): snapshot, read, batched writes.

PartitionKey = account id, RowKey = customer tenant id (lower-case GUID). The sync writes the
content properties from :func:`shared.contacts.organization_fields` plus ``Status``,
``FirstSyncedAt`` (on create) and ``LastChangedAt`` (on every write). Updates merge, so columns
the Platform adds to a row survive; nothing is ever deleted.
"""

from __future__ import annotations

import itertools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Iterable, Iterator, Mapping, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.contacts.mapping import CONTENT_FIELDS, check_table_limits, content_hash
from shared.keys import account_key, require_utc, tenant_key
from shared.store.tables import Tables, batches, store_error
from shared.store.tenant_index import TenantIndex

STATUS_ACTIVE = "active"
STATUS_RELATIONSHIP_ENDED = "relationship_ended"
STATUS_EXCLUDED = "excluded"
STATUSES = (STATUS_ACTIVE, STATUS_RELATIONSHIP_ENDED, STATUS_EXCLUDED)

CREATE, UPDATE, END, EXCLUDE, INCLUDE = "create", "update", "end", "exclude", "include"
WRITE_KINDS = (CREATE, UPDATE, END, EXCLUDE, INCLUDE)
_STATUS_AFTER = {
    CREATE: STATUS_ACTIVE,
    UPDATE: STATUS_ACTIVE,
    END: STATUS_RELATIONSHIP_ENDED,
    EXCLUDE: STATUS_EXCLUDED,
    INCLUDE: STATUS_ACTIVE,
}
# Writes that carry sync content or end a relationship: never applied over an exclusion.
_SYNC_KINDS = (CREATE, UPDATE, END)
_CONTENT = frozenset(CONTENT_FIELDS)
_SNAPSHOT_COLUMNS = ["RowKey", "Status", "LastChangedAt", "Version", *CONTENT_FIELDS]
# A status snapshot leaves the content out: a tenth of the columns to send and parse.
_STATUS_COLUMNS = ["RowKey", "Status", "LastChangedAt", "IndirectResellerId", "Version"]
# 412: the row changed since it was read; 409: a create found the row already there. Both mean
# another writer got there first: the caller re-reads that one organization and decides again.
_CONFLICT_STATUSES = (409, 412)
# Point reads of one page's organizations side by side, within the client's connection pool (10).
_READERS = 8


@dataclass(frozen=True, slots=True)
class OrganizationState:
    """What a run needs to know about a stored organization: small, so a snapshot stays small."""

    status: str
    content_hash: str  # empty when the state was read without the content (a status snapshot)
    etag: str
    # Kept so a run that cannot see a customer's indirect seller (an incremental list walk)
    # carries the stored attribution forward instead of erasing it.
    indirect_reseller_id: str = ""
    # When the sync last wrote the row: a walk may only end what was unchanged since before it began.
    changed_at: datetime | None = None
    # The row's Version (docs/storage.md): one more with every stored change; 0 for a row older than it.
    version: int = 0


def next_version(previous: OrganizationState | None) -> int:
    """The Version a write decided on ``previous`` stores (an ETag-guarded write: no two land with one)."""
    return previous.version + 1 if previous is not None else 1


@dataclass(frozen=True)
class OrganizationWrite:
    """One change to one organization.

    ``fields`` holds content properties (all of them for ``create``, any of them for ``update``
    and ``include``, none for ``end`` and ``exclude``). ``at`` becomes ``LastChangedAt`` (and
    ``FirstSyncedAt`` on create). ``previous`` is the state the decision was based on: when given,
    the write only lands if the row is still unchanged since (ETag), and sync writes to a row
    known to be excluded are skipped.
    """

    tenant_id: str
    kind: str
    at: datetime
    fields: Mapping[str, str] = field(default_factory=dict)
    previous: OrganizationState | None = None


@dataclass(frozen=True)
class WriteStats:
    """What :meth:`OrganizationStore.apply` did."""

    transactions: int = 0
    entities: int = 0
    skipped_excluded: tuple[str, ...] = ()
    # Writes not applied because another writer changed (or created) the row first.
    conflicts: tuple[str, ...] = ()


def skipped_over_exclusion(write: OrganizationWrite) -> bool:
    """Whether :meth:`OrganizationStore.apply` leaves this write out: sync content or an ending,
    decided on a row known to be excluded."""
    return write.kind in _SYNC_KINDS and write.previous is not None and write.previous.status == STATUS_EXCLUDED


def organization_state(entity: Mapping[str, object], *, with_content: bool = True) -> OrganizationState:
    """The :class:`OrganizationState` of a stored row (as returned by ``get`` or a query); without
    its content hash (empty: unknown) when the row was read without its content."""
    metadata = getattr(entity, "metadata", {}) or {}
    changed = entity.get("LastChangedAt")
    return OrganizationState(
        status=str(entity.get("Status") or ""),
        content_hash=content_hash(entity) if with_content else "",
        etag=str(metadata.get("etag") or ""),
        indirect_reseller_id=str(entity.get("IndirectResellerId") or ""),
        changed_at=require_utc(changed, "LastChangedAt") if isinstance(changed, datetime) else None,
        version=int(entity.get("Version") or 0),
    )


class OrganizationStore:
    """Reads and writes the Organizations table for one or more accounts."""

    def __init__(self, tables: Tables) -> None:
        self._table = tables.organizations
        self.tenant_index = TenantIndex(tables)

    def snapshot(self, account_id: str) -> dict[str, OrganizationState]:
        """Every organization of an account as ``{tenant id: state}``, from one partition query."""
        query = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": account_key(account_id)}, select=_SNAPSHOT_COLUMNS
        )
        return {entity["RowKey"]: organization_state(entity) for entity in query}

    def statuses(self, account_id: str) -> dict[str, OrganizationState]:
        """Like :meth:`snapshot` without the content: states whose ``content_hash`` is empty
        (unknown). For runs that decide from status alone and read the few rows they write."""
        query = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": account_key(account_id)}, select=_STATUS_COLUMNS
        )
        return {entity["RowKey"]: organization_state(entity, with_content=False) for entity in query}

    def directory(self, account_id: str) -> Iterator[dict]:
        """Every organization of an account with its names and status only, for an operator's
        search (one partition query of four columns: seconds for tens of thousands of rows)."""
        return iter(self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": account_key(account_id)},
            select=["RowKey", "CompanyName", "Domain", "Status"]))
    def states(self, account_id: str, tenant_ids: Iterable[str], *,
               with_content: bool = True) -> dict[str, OrganizationState]:
        """The stored states of these organizations only (a missing row is absent), by point reads
        side by side: what one page of customers needs, whatever the size of the estate."""
        account = account_key(account_id)
        tenants = list(dict.fromkeys(tenant_key(tenant) for tenant in tenant_ids))
        columns = _SNAPSHOT_COLUMNS if with_content else _STATUS_COLUMNS

        def read(tenant: str):
            try:
                return self._table.get_entity(account, tenant, select=columns)
            except ResourceNotFoundError:
                return None

        if len(tenants) <= 1:
            rows = [read(tenant) for tenant in tenants]
        else:
            with ThreadPoolExecutor(max_workers=min(_READERS, len(tenants)), thread_name_prefix="org-read") as pool:
                rows = list(pool.map(read, tenants))
        return {tenant: organization_state(row, with_content=with_content)
                for tenant, row in zip(tenants, rows) if row is not None}

    def each_state(self, account_id: str, *, status: str | None = None) -> Iterator[tuple[str, OrganizationState]]:
        """Every organization of an account (optionally only those with ``status``) as
        ``(tenant id, state without content)``, streamed: the caller keeps what it needs."""
        parameters = {"pk": account_key(account_id)}
        query_filter = "PartitionKey eq @pk"
        if status is not None:
            query_filter += " and Status eq @status"
            parameters["status"] = status
        query = self._table.query_entities(query_filter, parameters=parameters, select=_STATUS_COLUMNS)
        return ((entity["RowKey"], organization_state(entity, with_content=False)) for entity in query)

    def holds_any(self, account_id: str) -> bool:
        """Whether the account has any organization stored (one entity read at most)."""
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": account_key(account_id)},
                                           select=["RowKey"], results_per_page=1)
        return next(iter(query), None) is not None

    def get(self, account_id: str, tenant_id: str) -> dict | None:
        """One organization row, or ``None``. The row's ETag is in ``row.metadata["etag"]``."""
        try:
            return self._table.get_entity(account_key(account_id), tenant_key(tenant_id))
        except ResourceNotFoundError:
            return None

    def changed_at(self, account_id: str, tenant_ids: Sequence[str] | None = None, *,
                   since: datetime | None = None) -> dict[str, datetime | None]:
        """``{tenant id: LastChangedAt}`` for the given organizations (point reads; a missing row
        is absent), or for every organization changed at or after ``since`` (one filtered query)."""
        if tenant_ids is not None:
            found = {}
            for tenant in tenant_ids:
                try:
                    row = self._table.get_entity(account_key(account_id), tenant_key(tenant), select=["LastChangedAt"])
                except ResourceNotFoundError:
                    continue
                found[tenant_key(tenant)] = row.get("LastChangedAt")
            return found
        if since is None:
            raise ValueError("changed_at needs tenant ids or a moment")
        query = self._table.query_entities(
            "PartitionKey eq @pk and LastChangedAt ge @since",
            parameters={"pk": account_key(account_id), "since": require_utc(since, "since")},
            select=["RowKey", "LastChangedAt"],
        )
        return {row["RowKey"]: row.get("LastChangedAt") for row in query}

    def rows_changed_since(self, account_id: str, since: datetime, first: str, last: str,
                           select: Sequence[str] | None = None) -> dict[str, dict]:
        """``{tenant id: row}`` of the organizations from tenant ``first`` to ``last`` (inclusive)
        written at or after ``since``: one query over that key range only; ``select``: only those columns."""
        query = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @first and RowKey le @last and LastChangedAt ge @since",
            parameters={"pk": account_key(account_id), "first": tenant_key(first), "last": tenant_key(last),
                        "since": require_utc(since, "since")},
            select=list(select) if select else None,
        )
        return {row["RowKey"]: row for row in query}

    def list(self, account_id: str, *, status: str | None = None, top: int | None = None) -> Iterator[dict]:
        """The organizations of an account, optionally only those with ``status``, at most ``top``."""
        parameters = {"pk": account_key(account_id)}
        query_filter = "PartitionKey eq @pk"
        if status is not None:
            if status not in STATUSES:
                raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
            query_filter += " and Status eq @status"
            parameters["status"] = status
        query = self._table.query_entities(
            query_filter, parameters=parameters, results_per_page=min(top, 1000) if top else None
        )
        return itertools.islice(query, top) if top is not None else iter(query)

    def apply(self, account_id: str, changes: Sequence[OrganizationWrite]) -> WriteStats:
        """Write ``changes`` to one account's partition in transactions of at most 100 entities.

        Everything is validated before the first request (tenant ids, kinds, property names, Table
        limits). Creates fail rather than overwrite an existing row; other writes merge. A write
        whose ``previous`` state is ``excluded`` is skipped when it is a create, update or end.

        A write that loses a race (the row changed since ``previous`` was read, or a create finds
        the row there) is left out of its transaction, the rest of the transaction is submitted
        again, and the organization is returned in ``conflicts`` for the caller to re-read and
        decide again: one writer's change never fails another's page. Any other failed
        transaction raises :class:`~shared.store.tables.StoreError`; earlier transactions stay
        written, and replaying them is harmless.
        """
        partition = account_key(account_id)
        operations = []
        skipped = []
        seen: set[str] = set()
        for write in changes:
            tenant = tenant_key(write.tenant_id)
            if tenant in seen:
                raise ValueError(f"organization {tenant} appears twice in one apply")
            seen.add(tenant)
            if write.kind not in WRITE_KINDS:
                raise ValueError(f"write kind must be one of {', '.join(WRITE_KINDS)}, got {write.kind!r}")
            if skipped_over_exclusion(write):
                skipped.append(tenant)
                continue
            operations.append(_operation(partition, tenant, write))
        # Index first: an organization must never exist that a contact-edit check cannot find.
        self.tenant_index.record(partition, [op[1]["RowKey"] for op in operations if op[0] == "create"])
        transactions = entities = 0
        conflicts: list[str] = []
        for batch in batches(operations):
            while batch:
                try:
                    self._table.submit_transaction(batch)
                except TableTransactionError as exc:
                    blamed = batch[exc.index][1]["RowKey"] if 0 <= exc.index < len(batch) else None
                    if exc.status_code not in _CONFLICT_STATUSES or blamed is None:
                        raise store_error(self._table, partition, transactions, exc, entities, blamed) from exc
                    # A transaction is atomic: nothing of it landed. Drop the loser and go again.
                    conflicts.append(blamed)
                    batch = [op for op in batch if op[1]["RowKey"] != blamed]
                    continue
                except AzureError as exc:
                    raise store_error(self._table, partition, transactions, exc, entities, None) from exc
                transactions += 1
                entities += len(batch)
                break
        return WriteStats(transactions, entities, tuple(skipped), tuple(conflicts))


def _operation(partition: str, tenant: str, write: OrganizationWrite) -> tuple:
    content = dict(write.fields)
    unknown = set(content) - _CONTENT
    if unknown:
        raise ValueError(f"organization {tenant}: not content properties: {', '.join(sorted(unknown))}")
    if write.kind == CREATE and set(content) != _CONTENT:
        raise ValueError(f"organization {tenant}: a create needs every content property")
    if write.kind in (END, EXCLUDE) and content:
        raise ValueError(f"organization {tenant}: a {write.kind} changes the status only")
    if write.kind == CREATE and write.previous is not None:
        raise ValueError(f"organization {tenant}: already stored, write an update instead")
    check_table_limits(content)
    at = require_utc(write.at, "the write's timestamp")
    entity = {"PartitionKey": partition, "RowKey": tenant, **content, "Status": _STATUS_AFTER[write.kind]}
    if write.kind == CREATE or write.previous is not None:
        entity["Version"] = next_version(write.previous)
    if write.kind == CREATE:
        # "create" fails on an existing row: a create never overwrites an organization.
        return ("create", {**entity, "FirstSyncedAt": at, "LastChangedAt": at})
    options: dict = {"mode": UpdateMode.MERGE}
    if write.previous is not None and write.previous.etag:
        # Only if unchanged since the snapshot: an exclusion made meanwhile is never overwritten.
        options.update(etag=write.previous.etag, match_condition=MatchConditions.IfNotModified)
    # "update" (not upsert) fails on a missing row, so an end never creates a partial organization.
    return ("update", {**entity, "LastChangedAt": at}, options)
