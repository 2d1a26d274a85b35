"""Which customers a full reconciliation walk has seen (ReconciliationWalk table).

A customer missing from a *complete* walk has ended its relationship (docs/glossary.md). A walk can span
several invocations (docs/execution-model.md), so the seen set is stored: PartitionKey = ``{account}|{walk id}``,
RowKey = zero-padded page number, one row per page of the customer list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable, Iterable

from azure.core.exceptions import ResourceNotFoundError

from shared.store.id_lists import pack_ids, unpack_ids
from shared.store.tenant_set import TenantSet
from shared.keys import (SEPARATOR, account_range, composite_key, newest_first_bound, newest_first_time, tenant_key,
                         token_key)
from shared.store.tables import Tables, delete_found, delete_rows, row_keys

_PAGE_DIGITS = 6


class ReconciliationWalk:
    """Records and reads the tenant ids a walk has seen."""

    def __init__(self, tables: Tables) -> None:
        self._table = tables.walk

    def record_page(self, account_id: str, walk_id: str, page_no: int, tenant_ids: Iterable[str]) -> None:
        """Remember one page's tenant ids. Idempotent: recording a page again replaces it."""
        if not isinstance(page_no, int) or not 0 <= page_no < 10**_PAGE_DIGITS:
            raise ValueError(f"page number must be 0..{10**_PAGE_DIGITS - 1}, got {page_no!r}")
        ids = [tenant_key(tenant_id) for tenant_id in tenant_ids]
        entity = {"PartitionKey": self._partition(account_id, walk_id), "RowKey": f"{page_no:0{_PAGE_DIGITS}d}"}
        self._table.upsert_entity({**entity, **pack_ids(ids)})

    def seen(self, account_id: str, walk_id: str) -> set[str]:
        """Every tenant id recorded for the walk."""
        query = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": self._partition(account_id, walk_id)}
        )
        return {tenant for entity in query for tenant in unpack_ids(entity)}

    def seen_set(self, account_id: str, walk_id: str) -> TenantSet:
        """Every tenant id recorded for the walk, as a compact set (8 bytes a customer); read in
        small responses (a row holds up to 18 KB of ids), so memory stays flat."""
        query = self._table.query_entities(
            "PartitionKey eq @pk", parameters={"pk": self._partition(account_id, walk_id)}, results_per_page=16
        )
        seen = TenantSet()
        for entity in query:
            seen.update(unpack_ids(entity))
        return seen.freeze()

    def last_seen(self, account_id: str, walk_id: str, page_no: int) -> str:
        """The last tenant id the walk recorded on page ``page_no`` (its checkpoint's): where it
        stands, from one point read; going back a page when that one listed nobody ("" when none)."""
        partition = self._partition(account_id, walk_id)
        for page in range(page_no, max(0, page_no - 3), -1):
            try:
                ids = unpack_ids(self._table.get_entity(partition, f"{page:0{_PAGE_DIGITS}d}"))
            except ResourceNotFoundError:
                continue
            if ids:
                return ids[-1]
        return ""

    def discard(self, account_id: str, walk_id: str) -> int:
        """Delete the walk's rows (in transactions of 100); returns how many were deleted."""
        partition = self._partition(account_id, walk_id)
        return delete_rows(self._table, partition, row_keys(self._table, partition))

    def prune(self, account_id: str, before: datetime, may_continue: Callable[[], bool], *,
              in_progress: str | None = None) -> tuple[int, bool]:
        """Delete the rows of the account's walks begun before ``before`` (a walk's id is its run's,
        newest first), never those of the walk ``in_progress`` (the checkpoint's); ``(deleted, finished)``."""
        _, high = account_range(account_id)

        def keep(entity) -> bool:
            walk_id = entity["PartitionKey"].split(SEPARATOR, 1)[1]
            began = newest_first_time(walk_id)
            return walk_id == in_progress or began is None or began >= before

        return delete_found(self._table, "PartitionKey gt @low and PartitionKey lt @high",
                            {"low": composite_key(account_id, newest_first_bound(before)), "high": high},
                            may_continue=may_continue, keep=keep)

    @staticmethod
    def _partition(account_id: str, walk_id: str) -> str:
        return composite_key(account_id, token_key(walk_id, "walk id"))
