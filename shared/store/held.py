"""Held endings (the HeldChanges table): the deletion guard's queue for an operator (docs/glossary.md).

When one run would end more than the threshold of an account's active organizations, nothing is
ended; the run holds the endings here. Header row: PartitionKey = account id, RowKey = held id
(newest first). The tenant ids go in rows of 800 under PartitionKey = ``{account}|{held id}``,
so a hold of any size fits.

An account has at most one pending hold: a later run that sees the disappearance again updates it
(its tenants, the run that last saw it, how often it was seen) instead of adding another. A hold
goes ``pending`` -> ``approving`` (an operator approved; endings in progress) -> ``approved`` (all
confirmed and ended), or ``pending`` -> ``rejected``. An approval that fails midway stays
``approving`` and is continued, never used up.

Holds awaiting a decision or in approval are found by key: each has an index row ``~open~{held
id}`` in the account's partition (RowKeys beginning ``~`` sort after every held id), written and
deleted in one transaction with the header's status. A partition kept before the index rows existed
is indexed once, on first read (the row ``~indexed`` says it was).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError, UpdateMode

from shared.store.id_lists import IDS_PER_PROPERTY, pack_ids, unpack_ids
from shared.keys import account_key, composite_key, newest_first_id, require_utc, tenant_key, token_key, utc_now
from shared.store.tables import ConcurrencyConflict, Tables, delete_rows, row_keys, submit_batches

PENDING, APPROVING, APPROVED, REJECTED = "pending", "approving", "approved", "rejected"
_OPEN_STATUSES = (PENDING, APPROVING)
_INDEX, _OPEN, _INDEXED = "~", "~open~", "~indexed"
_HTTP_PRECONDITION_FAILED = 412


class HeldEndingDecided(ConcurrencyConflict):
    """The held ending is no longer pending: someone approved or rejected it already."""


@dataclass(frozen=True)
class HeldEnding:
    """A held ending: which run held it, how many organizations, and its decision."""

    account_id: str
    held_id: str
    run_id: str
    status: str
    tenant_count: int
    active_count: int
    held_at: datetime
    decided_at: datetime | None = None
    decided_by: str = ""
    last_run_id: str = ""
    sightings: int = 1
    ended_count: int = 0
    kept_count: int = 0


class HeldEndings:
    """Holds mass endings and records operators' decisions on them."""

    def __init__(self, tables: Tables, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = tables.held
        self._clock = clock

    def hold(self, account_id: str, run_id: str, tenant_ids: Sequence[str], active_count: int) -> str:
        """Hold the ending of ``tenant_ids`` (out of ``active_count`` active); returns the held id.

        When the account already has a pending hold, that hold is updated to this run's view
        instead (one hold per disappearance, however many runs see it). The tenant ids are written
        before the header, so a pending hold is always complete.
        """
        account = account_key(account_id)
        run = token_key(run_id, "run id")
        ids = [tenant_key(tenant_id) for tenant_id in tenant_ids]
        now = self._clock()
        for current in self._pending_headers(account):
            held_id = current["RowKey"]
            if sorted(self.tenant_ids(account, held_id)) != sorted(ids):
                self._write_tenants(account, held_id, ids)
            update = {"PartitionKey": account, "RowKey": held_id, "TenantCount": len(ids),
                      "ActiveCount": int(active_count), "LastRunId": run, "LastSeenAt": now,
                      "Sightings": int(current.get("Sightings", 1)) + 1}
            try:
                self._table.update_entity(update, mode=UpdateMode.MERGE, etag=current.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                break  # decided a moment ago: this disappearance gets a hold of its own
            return held_id
        held_id = newest_first_id(now)
        self._write_tenants(account, held_id, ids)
        header = {"PartitionKey": account, "RowKey": held_id, "RunId": run, "LastRunId": run, "Status": PENDING,
                  "TenantCount": len(ids), "ActiveCount": int(active_count), "HeldAt": now, "LastSeenAt": now,
                  "Sightings": 1}
        self._table.submit_transaction([("create", header), ("upsert", _open_mark(account, held_id))])
        return held_id

    def _write_tenants(self, account: str, held_id: str, ids: list[str]) -> None:
        partition = composite_key(account, held_id)
        pages = [
            ("upsert", {"PartitionKey": partition, "RowKey": f"{page:06d}", **pack_ids(ids[start : start + IDS_PER_PROPERTY])})
            for page, start in enumerate(range(0, len(ids), IDS_PER_PROPERTY))
        ]
        submit_batches(self._table, partition, pages)
        stale = [key for key in row_keys(self._table, partition) if int(key) >= len(pages)]
        delete_rows(self._table, partition, stale)

    def _pending_headers(self, account: str) -> list:
        return self._open_headers(account, PENDING, index=True)

    def _open_headers(self, account: str, status: str, *, index: bool = False) -> list:
        """The headers in ``status`` (pending or approving), newest first, found by their index rows;
        in a partition kept before they existed, by a filter (which ``index`` makes the last)."""
        marks = [m["RowKey"] for m in self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @index", parameters={"pk": account, "index": _INDEX},
            select=["RowKey"])]
        if _INDEXED not in marks:
            marks = self._index_once(account, write=index)
        headers = (self._header(account, mark[len(_OPEN):]) for mark in marks if mark.startswith(_OPEN))
        return [header for header in headers if header is not None and header["Status"] == status]

    def _index_once(self, account: str, *, write: bool) -> list[str]:
        """The index rows of the open holds of a partition kept before index rows existed, written
        when ``write`` (a hold's write path: reads never write)."""
        query = self._table.query_entities(
            "PartitionKey eq @pk and ( Status eq @pending or Status eq @approving )",
            parameters={"pk": account, "pending": PENDING, "approving": APPROVING}, select=["RowKey"])
        marks = [_open_mark(account, entity["RowKey"]) for entity in query]
        if write:
            submit_batches(self._table, account, [("upsert", mark) for mark in marks]
                           + [("upsert", {"PartitionKey": account, "RowKey": _INDEXED})])
        return [mark["RowKey"] for mark in marks]

    def get(self, account_id: str, held_id: str) -> HeldEnding | None:
        """One held ending, or ``None``."""
        entity = self._header(account_id, held_id)
        return _held(entity) if entity is not None else None

    def pending(self, account_id: str) -> list[HeldEnding]:
        """The account's held endings waiting for a decision, newest first."""
        return [_held(entity) for entity in self._open_headers(account_key(account_id), PENDING)]

    def decided_since(self, account_id: str, since: datetime) -> list[HeldEnding]:
        """The account's held endings decided (approved, approving or rejected) at or after ``since``."""
        query = self._table.query_entities(
            "PartitionKey eq @pk and DecidedAt ge @since",
            parameters={"pk": account_key(account_id), "since": require_utc(since, "since")})
        return sorted((_held(entity) for entity in query), key=lambda held: held.decided_at, reverse=True)

    def tenant_ids(self, account_id: str, held_id: str) -> list[str]:
        """The tenant ids a held ending would end."""
        partition = composite_key(account_id, token_key(held_id, "held id"))
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
        return [tenant for entity in query for tenant in unpack_ids(entity)]

    def approve(self, account_id: str, held_id: str, by: str = "") -> HeldEnding:
        """Start (or resume) the approval of a hold; returns it, ``approving`` or already ``approved``.

        Idempotent: approving an approval in progress resumes it, and approving a finished one
        returns it unchanged. Raises :class:`HeldEndingDecided` only for a rejected hold (also
        when a concurrent call rejected it).
        """
        entity = self._header(account_id, held_id)
        if entity is None:
            raise KeyError(f"no held ending {held_id!r} for account {account_id!r}")
        if entity["Status"] in (APPROVING, APPROVED):
            return _held(entity)
        self._decide(entity, APPROVING, by)
        return self.get(account_id, held_id)

    def complete_approval(self, account_id: str, held_id: str, *, ended: int, kept: int) -> HeldEnding:
        """Every tenant of an approving hold is settled: ``ended`` confirmed gone, ``kept`` alive."""
        entity = self._header(account_id, held_id)
        if entity is None:
            raise KeyError(f"no held ending {held_id!r} for account {account_id!r}")
        if entity["Status"] == APPROVING:
            self._submit([
                ("update", {"PartitionKey": entity["PartitionKey"], "RowKey": entity["RowKey"], "Status": APPROVED,
                            "EndedCount": int(ended), "KeptCount": int(kept), "CompletedAt": self._clock()},
                 {"mode": UpdateMode.MERGE, "etag": entity.metadata["etag"],
                  "match_condition": MatchConditions.IfNotModified}),
                ("delete", _open_mark(entity["PartitionKey"], entity["RowKey"])),
            ])
        return self.get(account_id, held_id)

    def approving(self, account_id: str) -> list[HeldEnding]:
        """Approvals in progress (an earlier attempt stopped midway): runs continue them."""
        return [_held(entity) for entity in self._open_headers(account_key(account_id), APPROVING)]

    def reject(self, account_id: str, held_id: str, by: str = "") -> None:
        """Reject a pending hold: those organizations stay as they are."""
        entity = self._header(account_id, held_id)
        if entity is None:
            raise KeyError(f"no held ending {held_id!r} for account {account_id!r}")
        self._decide(entity, REJECTED, by)

    def _decide(self, entity, status: str, by: str) -> None:
        held_id = entity["RowKey"]
        if entity["Status"] != PENDING:
            raise HeldEndingDecided(f"held ending {held_id} is already {entity['Status']}")
        decision = {
            "PartitionKey": entity["PartitionKey"],
            "RowKey": entity["RowKey"],
            "Status": status,
            "DecidedAt": self._clock(),
            "DecidedBy": by[:200],
        }
        operations = [("update", decision, {"mode": UpdateMode.MERGE, "etag": entity.metadata["etag"],
                                            "match_condition": MatchConditions.IfNotModified})]
        if status not in _OPEN_STATUSES:
            operations.append(("delete", _open_mark(entity["PartitionKey"], held_id)))
        try:
            self._submit(operations)
        except TableTransactionError as exc:
            if exc.status_code != _HTTP_PRECONDITION_FAILED:
                raise
            raise HeldEndingDecided(f"held ending {held_id} was decided by someone else") from exc

    def prune(self, account_id: str, before: datetime, may_continue: Callable[[], bool]) -> tuple[int, bool]:
        """Delete the account's holds decided (approved or rejected) before ``before``, tenant rows
        first and the header last, so a prune that stops finds the hold again; never a pending or
        approving one. Returns ``(rows deleted, finished)``."""
        account = account_key(account_id)
        query = self._table.query_entities(
            "PartitionKey eq @pk and ( Status eq @approved or Status eq @rejected )",
            parameters={"pk": account, "approved": APPROVED, "rejected": REJECTED},
            select=["PartitionKey", "RowKey", "HeldAt", "DecidedAt", "CompletedAt"])
        deleted = 0
        for entity in query:
            settled = entity.get("CompletedAt") or entity.get("DecidedAt") or entity["HeldAt"]
            if require_utc(settled, "a hold's decision") >= before:
                continue
            if not may_continue():
                return deleted, False
            partition = composite_key(account, entity["RowKey"])
            deleted += delete_rows(self._table, partition, row_keys(self._table, partition))
            self._table.delete_entity(account, entity["RowKey"])
            deleted += 1
        return deleted, True

    def _submit(self, operations: list[tuple]) -> None:
        """One transaction; an index row already gone does not fail the rest."""
        while True:
            try:
                self._table.submit_transaction(operations)
                return
            except TableTransactionError as exc:
                if not (exc.index > 0 and exc.status_code == 404 and operations[exc.index][0] == "delete"):
                    raise
                del operations[exc.index]

    def _header(self, account_id: str, held_id: str):
        try:
            return self._table.get_entity(account_key(account_id), token_key(held_id, "held id"))
        except ResourceNotFoundError:
            return None


def _open_mark(account: str, held_id: str) -> dict:
    return {"PartitionKey": account, "RowKey": _OPEN + held_id}


def _held(entity) -> HeldEnding:
    decided = entity.get("DecidedAt")
    return HeldEnding(
        account_id=entity["PartitionKey"],
        held_id=entity["RowKey"],
        run_id=entity["RunId"],
        status=entity["Status"],
        tenant_count=int(entity["TenantCount"]),
        active_count=int(entity["ActiveCount"]),
        held_at=require_utc(entity["HeldAt"], "HeldAt"),
        decided_at=require_utc(decided, "DecidedAt") if decided else None,
        decided_by=entity.get("DecidedBy", ""),
        last_run_id=entity.get("LastRunId", entity["RunId"]),
        sightings=int(entity.get("Sightings", 1)),
        ended_count=int(entity.get("EndedCount", 0)),
        kept_count=int(entity.get("KeptCount", 0)),
    )
