"""The tenant index (`OrganizationTenants`): which accounts hold an organization for a customer.

One row per customer: PartitionKey = customer tenant id, RowKey = "accounts", `Accounts` = the
account ids, comma-separated, so a lookup is one point read. An account is added before its
organization is created, so an organization never exists that the index does not name; an account
whose organization was never created (the create failed) points at nothing and is harmless.
Accounts are never removed: an organization is never deleted either.

A deployment with no organization yet is complete from the start (the first lookup sees the empty
table and marks it so). Deployments that stored organizations before the index existed are
covered twice over: a lookup that finds no row, while the index is not yet known to be complete,
falls back to scanning Organizations by RowKey (correct, but it reads every partition) and writes
the rows it finds; `ensure_backfilled` indexes every stored organization once and then marks the
index complete, after which a miss is a plain "no organization" answered by one point read.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.data.tables import UpdateMode

from shared import telemetry
from shared.keys import account_key, tenant_key
from shared.store.tables import StoreError, Tables
from shared.telemetry import names

# The completeness marker lives in a partition no tenant id (a GUID) can have.
_META_PARTITION = "_index"
_COMPLETE_ROW = "complete"
_ROW = "accounts"
# Index rows are one per partition, so they cannot share a transaction: write them side by side.
_WRITERS = 8
_ATTEMPTS = 5  # optimistic-concurrency rounds when two writers add accounts to one row


class TenantIndex:
    """Reads and writes the tenant index of one storage account."""

    def __init__(self, tables: Tables) -> None:
        self._index = tables.tenant_index
        self._organizations = tables.organizations
        self._complete = False  # once seen complete, it stays complete (rows are never removed)
        self._lock = threading.Lock()

    def record(self, account_id: str, tenant_ids: Iterable[str]) -> int:
        """Name ``account_id`` in the index rows of these customers (idempotent); returns how many.

        Raises :class:`StoreError` when a row cannot be written, so the caller creates no
        organization that the index would miss.
        """
        account = account_key(account_id)
        tenants = [tenant_key(tenant) for tenant in tenant_ids]
        if not tenants:
            return 0
        # One span for the page's rows, not one (or three, when the row exists) per customer.
        with telemetry.sdk_calls_in_one_span(names.SPAN_TENANT_INDEX, {
                names.ACCOUNT: account_id, names.TENANT_INDEX_ROWS: len(tenants)}):
            if len(tenants) == 1:
                self._add(tenants[0], account)
            else:
                with ThreadPoolExecutor(max_workers=min(_WRITERS, len(tenants))) as pool:
                    list(pool.map(lambda tenant: self._add(tenant, account), tenants))
        return len(tenants)

    def _add(self, tenant: str, account: str) -> None:
        try:
            for _ in range(_ATTEMPTS):
                try:
                    self._index.create_entity({"PartitionKey": tenant, "RowKey": _ROW, "Accounts": account})
                    return
                except ResourceExistsError:
                    pass
                except (ServiceRequestError, ServiceResponseError):
                    # The SDK retries no POST; a dropped connection (an idle keep-alive closed by the
                    # server) may or may not have created the row: the read below tells.
                    pass
                try:
                    row = self._index.get_entity(tenant, _ROW)
                except ResourceNotFoundError:
                    continue  # the dropped create never landed: create again
                accounts = _accounts(row)
                if account in accounts:
                    return
                try:
                    self._index.update_entity(
                        {"PartitionKey": tenant, "RowKey": _ROW, "Accounts": ",".join([*accounts, account])},
                        mode=UpdateMode.MERGE, etag=row.metadata["etag"], match_condition=MatchConditions.IfNotModified,
                    )
                    return
                except (ResourceModifiedError, ResourceNotFoundError):
                    continue  # another writer changed the row meanwhile: read it again
        except AzureError as exc:
            raise self._failure(tenant, account, type(exc).__name__, getattr(exc, "status_code", None)) from exc
        raise self._failure(tenant, account, f"still contended after {_ATTEMPTS} attempts", 412)

    def _failure(self, tenant: str, account: str, reason: str, status: int | None) -> StoreError:
        return StoreError(
            f"{self._index.table_name}: indexing customer {tenant} under account {account} failed ({reason})",
            table=self._index.table_name, partition=tenant, row_key=_ROW, status_code=status,
        )

    def accounts_of(self, tenant_id: str) -> list[str]:
        """Every account that holds (or held) an organization for this customer, from one point
        read; falls back to a scan of Organizations while the index is incomplete."""
        tenant = tenant_key(tenant_id)
        try:
            return _accounts(self._index.get_entity(tenant, _ROW))
        except ResourceNotFoundError:
            pass
        if self.is_complete():
            return []
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
            # A deployment that has stored no organization yet is complete as it is: every
            # organization from now on is indexed before it is created.
            first = next(iter(self._organizations.list_entities(results_per_page=1, select=["RowKey"])), None)
            if first is not None:
                return False
            self._mark_complete(0)
        with self._lock:
            self._complete = True
        return True

    def _mark_complete(self, indexed: int) -> None:
        self._index.upsert_entity({"PartitionKey": _META_PARTITION, "RowKey": _COMPLETE_ROW, "Organizations": indexed})

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
        self._mark_complete(written)
        with self._lock:
            self._complete = True
        return written


def _accounts(row: dict) -> list[str]:
    return [account for account in str(row.get("Accounts") or "").split(",") if account]
