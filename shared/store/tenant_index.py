"""The tenant index (`OrganizationTenants`): which accounts hold an organization for a customer.

One row per customer and account: PartitionKey = the tenant id's first hex digit (16 buckets),
RowKey = ``{tenant id}|{account id}``. A lookup is one small range read (the rows under
``{tenant id}|``); a page of new customers is written as idempotent upserts, up to 100 a
transaction per bucket, so a page of 500 costs about 16 requests instead of 500. An account is
added before its organization is created, so an organization never exists that the index does
not name; an account whose organization was never created (the create failed) points at nothing
and is harmless. Rows are never removed: an organization is never deleted either.

Earlier deployments kept one row per customer (PartitionKey = tenant id, RowKey = ``accounts``,
``Accounts`` comma-separated). Those rows are still read, beside the range read, until the
migration (:meth:`TenantIndex.ensure_backfilled`, resumable, a bounded slice per call) has put
every stored organization into the bucket layout and marked it complete. A deployment with no
organization yet is complete from the start. Before an index is known complete, a lookup that
finds nothing falls back to scanning Organizations by RowKey (correct, but it reads every partition).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Iterable

from azure.core.exceptions import AzureError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError
from azure.data.tables import UpdateMode

from shared import telemetry
from shared.keys import SEPARATOR, account_key, tenant_key
from shared.store.tables import MAX_BATCH, StoreError, Tables
from shared.telemetry import names

# The markers live in a partition no bucket (one hex digit) or old row (a GUID) can have.
_META_PARTITION = "_index"
_COMPLETE_ROW = "complete-by-bucket"
_OLD_COMPLETE_ROW = "complete"  # every organization was in the one-row-per-customer layout
_OLD_ROW = "accounts"
_WRITERS = 8  # buckets written side by side
_ATTEMPTS = 3  # a transaction whose connection dropped is sent again (upserts: harmless)
_MIGRATION_SLICE_SECONDS = 20.0  # what one call of ensure_backfilled spends at most


def bucket(tenant: str) -> str:
    return tenant[0]


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
        tenants = sorted({tenant_key(tenant) for tenant in tenant_ids})
        if not tenants:
            return 0
        by_bucket: dict[str, list[str]] = {}
        for tenant in tenants:
            by_bucket.setdefault(bucket(tenant), []).append(tenant)
        chunks = [(part, rows[i:i + MAX_BATCH]) for part, rows in by_bucket.items()
                  for i in range(0, len(rows), MAX_BATCH)]
        # One span for the page's rows, not one per transaction.
        with telemetry.sdk_calls_in_one_span(names.SPAN_TENANT_INDEX, {
                names.ACCOUNT: account_id, names.TENANT_INDEX_ROWS: len(tenants)}):
            if len(chunks) == 1:
                self._write(account, *chunks[0])
            else:
                with ThreadPoolExecutor(max_workers=min(_WRITERS, len(chunks))) as pool:
                    list(pool.map(lambda chunk: self._write(account, *chunk), chunks))
        return len(tenants)

    def _write(self, account: str, partition: str, tenants: list[str]) -> None:
        operations = [("upsert", {"PartitionKey": partition, "RowKey": f"{tenant}{SEPARATOR}{account}"},
                       {"mode": UpdateMode.MERGE}) for tenant in tenants]
        for attempt in range(_ATTEMPTS):
            try:
                self._index.submit_transaction(operations)
                return
            except (ServiceRequestError, ServiceResponseError) as exc:
                # The SDK retries no POST; a dropped connection (an idle keep-alive closed by the
                # server) may or may not have written: upserts make sending it again harmless.
                if attempt == _ATTEMPTS - 1:
                    raise self._failure(tenants, account, type(exc).__name__, None) from exc
            except AzureError as exc:
                raise self._failure(tenants, account, type(exc).__name__, getattr(exc, "status_code", None)) from exc

    def _failure(self, tenants: list[str], account: str, reason: str, status: int | None) -> StoreError:
        return StoreError(
            f"{self._index.table_name}: indexing {len(tenants)} customer(s) from {tenants[0]} under account "
            f"{account} failed ({reason})",
            table=self._index.table_name, partition=bucket(tenants[0]), row_key=tenants[0], status_code=status,
        )

    def accounts_of(self, tenant_id: str) -> list[str]:
        """Every account that holds (or held) an organization for this customer: one range read
        once the index is complete; before, also the old layout's row, then a scan of Organizations."""
        tenant = tenant_key(tenant_id)
        low = tenant + SEPARATOR
        rows = self._index.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high", select=["RowKey"],
            parameters={"pk": bucket(tenant), "low": low, "high": tenant + chr(ord(SEPARATOR) + 1)})
        found = {row["RowKey"][len(low):] for row in rows}
        if self._known_complete():
            return sorted(found)
        try:
            found.update(_accounts(self._index.get_entity(tenant, _OLD_ROW)))
        except ResourceNotFoundError:
            pass
        if found or self.is_complete():
            return sorted(found)
        found = set(self.scan_organizations(tenant))
        self.record_each(tenant, found)
        return sorted(found)

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

    def _known_complete(self) -> bool:
        with self._lock:
            if self._complete:
                return True
        if self._marker(_COMPLETE_ROW) is None:
            return False
        with self._lock:
            self._complete = True
        return True

    def is_complete(self) -> bool:
        """True once every stored organization is known to be indexed, in either layout."""
        if self._known_complete() or self._marker(_OLD_COMPLETE_ROW) is not None:
            return True
        # A deployment that has stored no organization yet is complete as it is: every
        # organization from now on is indexed before it is created.
        first = next(iter(self._organizations.list_entities(results_per_page=1, select=["RowKey"])), None)
        if first is not None:
            return False
        self._mark(_COMPLETE_ROW, {"Organizations": 0})
        with self._lock:
            self._complete = True
        return True

    def _marker(self, row: str) -> dict | None:
        try:
            return self._index.get_entity(_META_PARTITION, row)
        except ResourceNotFoundError:
            return None

    def _mark(self, row: str, properties: dict) -> None:
        self._index.upsert_entity({"PartitionKey": _META_PARTITION, "RowKey": row, **properties},
                                  mode=UpdateMode.REPLACE)

    def ensure_backfilled(self, seconds: float = _MIGRATION_SLICE_SECONDS) -> int:
        """Index stored organizations in the bucket layout (keys only, in key order), then mark the
        index complete. Resumable: each call goes on from the last key it recorded and spends at
        most ``seconds``; does nothing once complete; safe to run twice or concurrently.
        Returns the number of rows written by this call."""
        if self._known_complete():
            return 0
        progress = self._marker("migrating") or {}
        after = (str(progress.get("Partition", "")), str(progress.get("Row", "")))
        written = int(progress.get("Organizations", 0))
        stop_at = time.monotonic() + seconds
        query = "PartitionKey gt @pk or ( PartitionKey eq @pk and RowKey gt @rk )" if after[0] else None
        rows = self._organizations.query_entities(query, parameters={"pk": after[0], "rk": after[1]},
                                                  select=["PartitionKey", "RowKey"]) if query else \
            self._organizations.list_entities(select=["PartitionKey", "RowKey"])
        done = 0
        pending: list[tuple[str, str]] = []
        for row in rows:
            pending.append((row["PartitionKey"], row["RowKey"]))
            if len(pending) == 1000:
                done += self._record_keys(pending)
                self._mark("migrating", {"Partition": pending[-1][0], "Row": pending[-1][1],
                                         "Organizations": written + done})
                pending = []
                if time.monotonic() > stop_at:
                    return done
        done += self._record_keys(pending)
        self._mark(_COMPLETE_ROW, {"Organizations": written + done})
        with self._lock:
            self._complete = True
        return done

    def _record_keys(self, keys: list[tuple[str, str]]) -> int:
        by_account: dict[str, list[str]] = {}
        for account, tenant in keys:
            by_account.setdefault(account, []).append(tenant)
        return sum(self.record(account, tenants) for account, tenants in by_account.items())


def _accounts(row: dict) -> list[str]:
    return [account for account in str(row.get("Accounts") or "").split(",") if account]
