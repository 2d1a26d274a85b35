"""Per-account sync state (SyncState table): watermark, full-run checkpoint, lease, manual requests,
on-demand syncs.

PartitionKey = account id; one row per kind of state (RowKey ``watermark``, ``checkpoint``,
``lease``, ``manual-request``, ``on-demand``). Rows that two writers could race on are ETag-guarded.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.contacts.mapping import check_table_limits
from shared.keys import account_key, require_utc, utc_now
from shared.store.tables import ConcurrencyConflict, Tables, replace_if_unchanged

_WATERMARK, _CHECKPOINT, _MANUAL, _ON_DEMAND = "watermark", "checkpoint", "manual-request", "on-demand"
# Writers racing for the last on-demand slot of a window: each retry means another writer won one.
_ON_DEMAND_ATTEMPTS = 12
# Two leases per account: incremental runs and approvals take RUN_LEASE, the reconciliation walk
# WALK_LEASE. A walk spanning hours must not keep the 5-minute incremental run out, and with
# ETag-guarded writes and endings that need evidence, the two are safe side by side.
RUN_LEASE, WALK_LEASE = "lease", "lease-walk"
_LEASES = (RUN_LEASE, WALK_LEASE)
_RECONCILED = "reconciled-through"
# A string property holds 32K UTF-16 units; stay well inside it.
_APPLIED_RECORDS_CHARS = 30_000


class LeaseLost(RuntimeError):
    """The lease expired and someone else took it: stop work without moving any state."""


@dataclass(frozen=True)
class Lease:
    """Exclusive right to run a sync for one account until ``expires_at``."""

    account_id: str
    owner: str
    lease_id: str
    expires_at: datetime
    etag: str
    name: str = RUN_LEASE


@dataclass(frozen=True)
class Checkpoint:
    """A saved full-reconciliation position (``data``) and the ETag to save over it."""

    data: dict[str, Any]
    etag: str


class SyncState:
    """Watermarks, checkpoints, leases and manual-request times, per account."""

    def __init__(self, tables: Tables, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = tables.sync_state
        self._clock = clock

    # Watermark: the activity-log time up to which changes are safely stored.

    def get_watermark(self, account_id: str) -> datetime | None:
        """The account's watermark (UTC), or ``None`` before the first incremental run."""
        entity = self._read(account_id, _WATERMARK)
        return require_utc(entity["Value"], "watermark") if entity else None

    def set_watermark(
        self, account_id: str, value: datetime, applied_records: Mapping[str, datetime] | None = None
    ) -> None:
        """Store the watermark; call only after the changes it covers are written.

        ``applied_records`` (activity-log record id -> operation date) are records already acted
        on that the next run's overlap window will read again: it can skip them instead of
        fetching those customers a second time. The newest are kept when they do not all fit.
        """
        entity = {"PartitionKey": account_key(account_id), "RowKey": _WATERMARK}
        entity["Value"] = require_utc(value, "watermark")
        if applied_records:
            newest = sorted(applied_records.items(), key=lambda item: item[1], reverse=True)
            kept: list[list[str]] = []
            size = 2
            for record_id, at in newest:
                size += len(record_id) + 40
                if size > _APPLIED_RECORDS_CHARS:
                    break
                kept.append([record_id, require_utc(at, "record date").isoformat()])
            entity["AppliedRecords"] = json.dumps(kept, separators=(",", ":"))
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    def applied_records(self, account_id: str) -> dict[str, datetime]:
        """The activity-log records the last run acted on within its overlap window (id -> date)."""
        entity = self._read(account_id, _WATERMARK)
        if not entity or not entity.get("AppliedRecords"):
            return {}
        return {record_id: datetime.fromisoformat(at) for record_id, at in json.loads(entity["AppliedRecords"])}

    # Reconciled-through: when the last complete reconciliation walk started. Every change
    # dated before it was already read by that walk.

    def get_reconciled_through(self, account_id: str) -> datetime | None:
        """The start of the last complete full-reconciliation walk, or ``None``."""
        entity = self._read(account_id, _RECONCILED)
        return require_utc(entity["Value"], "reconciled-through") if entity else None

    def set_reconciled_through(self, account_id: str, value: datetime) -> None:
        entity = {"PartitionKey": account_key(account_id), "RowKey": _RECONCILED,
                  "Value": require_utc(value, "reconciled-through")}
        self._table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    # Checkpoint: where an interrupted full reconciliation continues.

    def get_checkpoint(self, account_id: str) -> Checkpoint | None:
        """The saved full-run checkpoint, or ``None`` when no walk is in progress."""
        entity = self._read(account_id, _CHECKPOINT)
        if entity is None:
            return None
        return Checkpoint(data=json.loads(entity["Data"]), etag=entity.metadata["etag"])

    def save_checkpoint(self, account_id: str, data: Mapping[str, Any], etag: str | None = None) -> str:
        """Save ``data`` (JSON-serialisable: next link, walk id, page, counters); returns the new ETag.

        Without ``etag`` the checkpoint must not exist yet; with it, it must be unchanged since
        it was read. Otherwise :class:`ConcurrencyConflict`: another writer got there first.
        """
        entity = {"PartitionKey": account_key(account_id), "RowKey": _CHECKPOINT, "Data": json.dumps(data)}
        check_table_limits({"Data": entity["Data"]})
        try:
            if etag is None:
                metadata = self._table.create_entity(entity)
            else:
                metadata = self._table.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError) as exc:
            raise ConcurrencyConflict(f"the checkpoint of account {account_id!r} was changed by another run") from exc
        return metadata["etag"]

    def clear_checkpoint(self, account_id: str, etag: str | None = None) -> None:
        """Forget the checkpoint (the walk finished); with ``etag``, only if unchanged since read."""
        options = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            self._table.delete_entity(account_key(account_id), _CHECKPOINT, **options)
        except ResourceModifiedError as exc:
            raise ConcurrencyConflict(f"the checkpoint of account {account_id!r} was changed by another run") from exc

    # Leases: two runs of one kind never overlap for an account (docs/execution-model.md).

    def acquire(self, account_id: str, owner: str, seconds: float, name: str = RUN_LEASE) -> Lease | None:
        """Take the account's lease ``name`` for ``seconds``, or ``None`` while someone else holds it.

        A free lease is taken by insert; an expired one (its holder crashed) by an ETag-guarded
        replace. Of two racing acquirers, the service lets exactly one write win.
        """
        if name not in _LEASES:
            raise ValueError(f"lease must be one of {', '.join(_LEASES)}")
        account = account_key(account_id)
        now = self._clock()
        entity = self._lease_entity(account, owner, secrets.token_hex(8), now + timedelta(seconds=seconds), name)
        try:
            metadata = self._table.create_entity(entity)
        except ResourceExistsError:
            current = self._read(account, name)
            if current is None:
                return None  # released a moment ago: the caller tries again on its next run
            if require_utc(current["ExpiresAt"], "lease expiry") > now:
                return None
            try:
                metadata = self._table.update_entity(
                    entity,
                    mode=UpdateMode.REPLACE,
                    etag=current.metadata["etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except (ResourceModifiedError, ResourceNotFoundError):
                return None
        return Lease(account, owner, entity["LeaseId"], entity["ExpiresAt"], metadata["etag"], name)

    def renew(self, lease: Lease, seconds: float) -> Lease:
        """Extend a held lease; raises :class:`LeaseLost` when it is no longer ours."""
        expires = self._clock() + timedelta(seconds=seconds)
        entity = self._lease_entity(lease.account_id, lease.owner, lease.lease_id, expires, lease.name)
        try:
            metadata = self._table.update_entity(
                entity, mode=UpdateMode.REPLACE, etag=lease.etag, match_condition=MatchConditions.IfNotModified
            )
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise LeaseLost(f"the lease of account {lease.account_id!r} was taken over") from exc
        return replace(lease, expires_at=expires, etag=metadata["etag"])

    def release(self, lease: Lease) -> None:
        """Give the lease back; a lease already taken over by someone else is left alone."""
        try:
            self._table.delete_entity(
                lease.account_id, lease.name, etag=lease.etag, match_condition=MatchConditions.IfNotModified
            )
        except ResourceModifiedError:
            pass

    def lease_holder(self, account_id: str, name: str = RUN_LEASE) -> Lease | None:
        """The current lease ``name`` (possibly expired), for status pages."""
        entity = self._read(account_id, name)
        if entity is None:
            return None
        expires = require_utc(entity["ExpiresAt"], "lease expiry")
        return Lease(entity["PartitionKey"], entity["Owner"], entity["LeaseId"], expires, entity.metadata["etag"],
                     name)

    # Manual "sync now" requests, for the cool-down (docs/http-api.md).

    def last_manual_request(self, account_id: str) -> datetime | None:
        """When "sync now" was last accepted for the account, or ``None``."""
        entity = self._read(account_id, _MANUAL)
        return require_utc(entity["At"], "manual request time") if entity else None

    def manual_request(self, account_id: str) -> tuple[datetime, str] | None:
        """When "sync now" was last accepted and by whom (``""`` before names were recorded)."""
        entity = self._read(account_id, _MANUAL)
        return (require_utc(entity["At"], "manual request time"), entity.get("By", "")) if entity else None

    def record_manual_request(self, account_id: str, at: datetime | None = None, by: str = "") -> None:
        """Remember that "sync now" was accepted (at ``at``, default now), by whom."""
        moment = require_utc(at, "manual request time") if at is not None else self._clock()
        self._table.upsert_entity(
            {"PartitionKey": account_key(account_id), "RowKey": _MANUAL, "At": moment, "By": by[:200]},
            mode=UpdateMode.REPLACE,
        )

    # On-demand syncs of one customer: a per-account limit per fixed window, shared by every instance.

    def take_on_demand(self, account_id: str, limit: int, window_seconds: int, now: datetime | None = None) -> int:
        """Count one on-demand sync in the current window; ``0`` when taken, else the seconds until
        the next window. One read and one ETag-guarded write per call (one read when refused)."""
        moment = require_utc(now, "now") if now is not None else self._clock()
        epoch = int(moment.timestamp())
        window = epoch - epoch % window_seconds
        account = account_key(account_id)
        for attempt in range(_ON_DEMAND_ATTEMPTS):
            if attempt:  # lost a race: a jittered pause, so racing instances stop meeting head on
                time.sleep(random.uniform(0, 0.005 * 2 ** min(attempt, 5)))
            current = self._read(account, _ON_DEMAND)
            same = current is not None and int(current.get("Window", -1)) == window
            count = int(current.get("Count", 0)) if same else 0
            if count >= limit:
                return max(1, window + window_seconds - epoch)
            entity = {"PartitionKey": account, "RowKey": _ON_DEMAND, "Window": window, "Count": count + 1}
            if replace_if_unchanged(self._table, entity, current):
                return 0
            # another instance counted one meanwhile: read again
        raise ConcurrencyConflict(f"account {account_id!r}: the on-demand count kept changing; try again")

    def _read(self, account_id: str, row: str):
        try:
            return self._table.get_entity(account_key(account_id), row)
        except ResourceNotFoundError:
            return None

    @staticmethod
    def _lease_entity(account: str, owner: str, lease_id: str, expires: datetime, name: str) -> dict:
        return {
            "PartitionKey": account,
            "RowKey": name,
            "Owner": owner[:200],
            "LeaseId": lease_id,
            "ExpiresAt": require_utc(expires, "lease expiry"),
        }
