"""Held mass endings (HeldChanges table): the deletion guard's queue for an operator (F8).

When one run would end more than the threshold of an account's active organizations, nothing is
ended; the run holds the endings here. Header row: PartitionKey = account id, RowKey = held id
(newest first). The tenant ids go in rows of 800 under PartitionKey = ``{account}|{held id}``,
so a hold of any size fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.store.id_lists import IDS_PER_PROPERTY, pack_ids, unpack_ids
from shared.store.keys import account_key, composite_key, newest_first_id, require_utc, tenant_key, token_key, utc_now
from shared.store.tables import ConcurrencyConflict, Tables, submit_batches

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"


class HeldChangeDecided(ConcurrencyConflict):
    """The held change is no longer pending: someone approved or rejected it already."""


@dataclass(frozen=True)
class HeldChange:
    """A held mass ending: which run held it, how many organizations, and its decision."""

    account_id: str
    held_id: str
    run_id: str
    status: str
    tenant_count: int
    active_count: int
    held_at: datetime
    decided_at: datetime | None = None
    decided_by: str = ""


class HeldChanges:
    """Holds mass endings and records operators' decisions on them."""

    def __init__(self, tables: Tables, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = tables.held
        self._clock = clock

    def hold(self, account_id: str, run_id: str, tenant_ids: Sequence[str], active_count: int) -> str:
        """Hold the ending of ``tenant_ids`` (out of ``active_count`` active); returns the held id.

        The tenant ids are written before the header, so a pending hold is always complete.
        """
        account = account_key(account_id)
        run = token_key(run_id, "run id")
        ids = [tenant_key(tenant_id) for tenant_id in tenant_ids]
        held_at = self._clock()
        held_id = newest_first_id(held_at)
        partition = composite_key(account, held_id)
        pages = [
            ("upsert", {"PartitionKey": partition, "RowKey": f"{page:06d}", **pack_ids(ids[start : start + IDS_PER_PROPERTY])})
            for page, start in enumerate(range(0, len(ids), IDS_PER_PROPERTY))
        ]
        submit_batches(self._table, partition, pages)
        self._table.create_entity(
            {
                "PartitionKey": account,
                "RowKey": held_id,
                "RunId": run,
                "Status": PENDING,
                "TenantCount": len(ids),
                "ActiveCount": int(active_count),
                "HeldAt": held_at,
            }
        )
        return held_id

    def get(self, account_id: str, held_id: str) -> HeldChange | None:
        """One held change, or ``None``."""
        entity = self._header(account_id, held_id)
        return _held(entity) if entity is not None else None

    def pending(self, account_id: str) -> list[HeldChange]:
        """The account's held changes waiting for a decision, newest first."""
        query = self._table.query_entities(
            "PartitionKey eq @pk and Status eq @status", parameters={"pk": account_key(account_id), "status": PENDING}
        )
        return [_held(entity) for entity in query]

    def tenant_ids(self, account_id: str, held_id: str) -> list[str]:
        """The tenant ids a held change would end."""
        partition = composite_key(account_id, token_key(held_id, "held id"))
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
        return [tenant for entity in query for tenant in unpack_ids(entity)]

    def approve(self, account_id: str, held_id: str, by: str = "") -> list[str]:
        """Approve a pending hold; returns the tenant ids to end now.

        Raises :class:`HeldChangeDecided` if it was already decided (also by a concurrent call).
        """
        self._decide(account_id, held_id, APPROVED, by)
        return self.tenant_ids(account_id, held_id)

    def reject(self, account_id: str, held_id: str, by: str = "") -> None:
        """Reject a pending hold: those organizations stay as they are."""
        self._decide(account_id, held_id, REJECTED, by)

    def _decide(self, account_id: str, held_id: str, status: str, by: str) -> None:
        entity = self._header(account_id, held_id)
        if entity is None:
            raise KeyError(f"no held change {held_id!r} for account {account_id!r}")
        if entity["Status"] != PENDING:
            raise HeldChangeDecided(f"held change {held_id} is already {entity['Status']}")
        decision = {
            "PartitionKey": entity["PartitionKey"],
            "RowKey": entity["RowKey"],
            "Status": status,
            "DecidedAt": self._clock(),
            "DecidedBy": by[:200],
        }
        try:
            self._table.update_entity(
                decision,
                mode=UpdateMode.MERGE,
                etag=entity.metadata["etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError as exc:
            raise HeldChangeDecided(f"held change {held_id} was decided by someone else") from exc

    def _header(self, account_id: str, held_id: str):
        try:
            return self._table.get_entity(account_key(account_id), token_key(held_id, "held id"))
        except ResourceNotFoundError:
            return None


def _held(entity) -> HeldChange:
    decided = entity.get("DecidedAt")
    return HeldChange(
        account_id=entity["PartitionKey"],
        held_id=entity["RowKey"],
        run_id=entity["RunId"],
        status=entity["Status"],
        tenant_count=int(entity["TenantCount"]),
        active_count=int(entity["ActiveCount"]),
        held_at=require_utc(entity["HeldAt"], "HeldAt"),
        decided_at=require_utc(decided, "DecidedAt") if decided else None,
        decided_by=entity.get("DecidedBy", ""),
    )
