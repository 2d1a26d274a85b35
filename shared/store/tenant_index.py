"""The tenant index (`OrganizationTenants`): which accounts hold an organization for a customer.

PartitionKey = customer tenant id, RowKey = account id. A row is written before the organization
it points to is created, so an organization never exists without its row; a row whose
organization was never created (the create failed) points at nothing and is harmless. Rows are
never deleted: an organization is never deleted either.

Deployments that stored organizations before the index existed are covered twice over: a lookup
that finds no row, while the index is not yet known to be complete, falls back to scanning
Organizations by RowKey (correct, but it reads every partition) and writes the rows it finds;
`ensure_backfilled` indexes every stored organization once and then marks the index complete,
after which a miss is a plain "no organization" answered by one partition query.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.store.keys import account_key, tenant_key
from shared.store.tables import StoreError, Tables

# The completeness marker lives in a partition no tenant id (a GUID) can have.
_META_PARTITION = "_index"
_COMPLETE_ROW = "complete"
# Index rows are one per partition, so they cannot share a transaction: write them side by side.
_WRITERS = 8


class TenantIndex:
    """Reads and writes the tenant index of one storage account."""

    def __init__(self, tables: Tables) -> None:
        self._index = tables.tenant_index
        self._organizations = tables.organizations
        self._complete = False  # once seen complete, it stays complete (rows are never removed)
        self._lock = threading.Lock()

    def record(self, account_id: str, tenant_ids: Iterable[str]) -> int:
        """Index these customers under ``account_id`` (idempotent upserts); returns how many.

        Raises :class:`StoreError` when a row cannot be written, so the caller creates no
        organization that the index would miss.
        """
        account = account_key(account_id)
        rows = [{"PartitionKey": tenant_key(tenant), "RowKey": account} for tenant in tenant_ids]
        if not rows:
            return 0

        def upsert(row: dict) -> None:
            try:
                self._index.upsert_entity(row, mode=UpdateMode.MERGE)
            except AzureError as exc:
                raise StoreError(
                    f"{self._index.table_name}: indexing customer {row['PartitionKey']} under account "
                    f"{account} failed ({type(exc).__name__})",
                    table=self._index.table_name, partition=row["PartitionKey"], row_key=account,
                    status_code=getattr(exc, "status_code", None),
                ) from exc

        if len(rows) == 1:
            upsert(rows[0])
        else:
            with ThreadPoolExecutor(max_workers=min(_WRITERS, len(rows))) as pool:
                list(pool.map(upsert, rows))
        return len(rows)

    def accounts_of(self, tenant_id: str) -> list[str]:
        """Every account that holds (or held) an organization for this customer, from one
        partition query; falls back to a scan of Organizations while the index is incomplete."""
        tenant = tenant_key(tenant_id)
        query = self._index.query_entities("PartitionKey eq @pk", parameters={"pk": tenant}, select=["RowKey"])
        accounts = [row["RowKey"] for row in query]
        if accounts or self.is_complete():
            return accounts
        found = self.scan_organizations(tenant)
        self.record_each(tenant, found)
        return found

    def scan_organizations(self, tenant_id: str) -> list[str]:
        """The accounts with an organization row for this customer, by scanning Organizations
        (every partition): the slow path, for deployments not indexed yet."""
        query = self._organizations.query_entities(
            "RowKey eq @rk", parameters={"rk": tenant_key(tenant_id)}, select=["PartitionKey"]
        )
        return sorted({row["PartitionKey"] for row in query})

    def record_each(self, tenant_id: str, account_ids: Iterable[str]) -> None:
        """Index one customer under each of several accounts."""
        for account in account_ids:
            self.record(account, [tenant_id])

    def is_complete(self) -> bool:
        """True once every stored organization is known to be indexed."""
        with self._lock:
            if self._complete:
                return True
        try:
            self._index.get_entity(_META_PARTITION, _COMPLETE_ROW)
        except ResourceNotFoundError:
            return False
        with self._lock:
            self._complete = True
        return True

    def ensure_backfilled(self) -> int:
        """Index every stored organization (one query over Organizations, keys only), then mark
        the index complete. Does nothing once complete; safe to run twice or concurrently.
        Returns the number of rows written."""
        if self.is_complete():
            return 0
        by_account: dict[str, list[str]] = {}
        rows = self._organizations.list_entities(select=["PartitionKey", "RowKey"])
        for row in rows:
            by_account.setdefault(row["PartitionKey"], []).append(row["RowKey"])
        written = sum(self.record(account, tenants) for account, tenants in by_account.items())
        self._index.upsert_entity({"PartitionKey": _META_PARTITION, "RowKey": _COMPLETE_ROW,
                                   "Organizations": written})
        with self._lock:
            self._complete = True
        return written
