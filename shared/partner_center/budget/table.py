"""The ledger's one row per account in the ``RequestBudget`` table: read it, and write it back only
if nobody changed it since (ETag), so rival instances never lose each other's bookings."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from .ledger import Ledger, Slice

if TYPE_CHECKING:
    from .shared import BudgetStats

ROW_KEY = "requests"
# Storage calls of the budget fail fast: a call waiting on the budget waits on them.
STORAGE_OPTIONS = {"retry_total": 0, "connection_timeout": 3, "read_timeout": 5}


def ledger_from_row(entity: dict) -> Ledger:
    released = {int(second): int(count) for second, count in json.loads(entity.get("Released") or "{}").items()}
    slices = [Slice(str(o), str(lane), int(n), float(s), float(e))
              for o, lane, n, s, e in json.loads(entity.get("Slices") or "[]")]
    foreground = {int(second): int(count) for second, count in json.loads(entity.get("Foreground") or "{}").items()}
    return Ledger(float(entity.get("PausedUntil") or 0.0), released, slices, foreground,
                  float(entity.get("PacedAt") or 0.0))


def row_from_ledger(ledger: Ledger, account_id: str, per_minute: int) -> dict:
    return {
        "PartitionKey": account_id,
        "RowKey": ROW_KEY,
        "PerMinute": per_minute,
        "PausedUntil": ledger.paused_until,
        "PacedAt": ledger.paced_at,
        "Released": json.dumps({str(k): v for k, v in sorted(ledger.released.items())}, separators=(",", ":")),
        "Foreground": json.dumps({str(k): v for k, v in sorted(ledger.foreground.items())}, separators=(",", ":")),
        "Slices": json.dumps([[s.owner, s.lane, s.count, round(s.start, 3), round(s.end, 3)] for s in ledger.slices],
                             separators=(",", ":")),
    }


class LedgerRow:
    """An account's ledger row. Its errors are azure-core's: ``ResourceModifiedError`` or
    ``ResourceExistsError`` when a rival wrote first, any other ``AzureError`` when storage is away."""

    def __init__(self, table: TableClient, account_id: str, per_minute: int, stats: "BudgetStats") -> None:
        self.table = table
        self.account_id = account_id
        self.per_minute = per_minute
        self.stats = stats

    def read(self) -> tuple[Ledger, str | None]:
        """The ledger and its ETag; an empty ledger and ``None`` if the row (or the table) is not there yet."""
        self.stats.storage_operations += 1
        try:
            entity = self.table.get_entity(self.account_id, ROW_KEY, **STORAGE_OPTIONS)
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "TableNotFound":
                self._create_table()
                return self.read()
            return Ledger(), None
        etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
        return ledger_from_row(entity), etag

    def write(self, ledger: Ledger, etag: str | None) -> None:
        """Create the row (``etag`` None) or replace it if it is still at ``etag``."""
        self.stats.storage_operations += 1
        entity = row_from_ledger(ledger, self.account_id, self.per_minute)
        if etag is None:
            self.table.create_entity(entity, **STORAGE_OPTIONS)
        else:
            self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=etag,
                                     match_condition=MatchConditions.IfNotModified, **STORAGE_OPTIONS)

    def _create_table(self) -> None:
        self.stats.storage_operations += 1
        try:
            self.table.create_table(**STORAGE_OPTIONS)
        except ResourceExistsError:
            pass
