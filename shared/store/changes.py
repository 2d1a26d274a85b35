"""The change log (docs/storage.md): which fields of which organization changed, old and new, in which run.

PartitionKey = ``{account}|{run id}`` so one run's entries go in transactions of 100;
RowKey = customer tenant id, so an organization has one entry per run (re-recording it in the
same run, e.g. after a crash and replay, replaces the entry instead of doubling it).

An entry is written just before its organization and carries the same timestamp as the row's
``LastChangedAt``: that is how a later run tells a stored change from one whose write never landed
(see :func:`shared.sync.change_log.settle_change_log`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Sequence

from shared.contacts.mapping import MAX_STRING_CODE_UNITS
from shared.keys import (SEPARATOR, account_range, composite_key, newest_first_bound, require_utc, tenant_key,
                         token_key)
from shared.store.tables import Tables, delete_found, delete_rows, submit_batches

# Beyond this a value in the log is cut: the log says what changed, the row holds the value.
_LOGGED_VALUE_CHARS = 200


@dataclass(frozen=True)
class ChangeEntry:
    """One organization's change in one run: ``changes`` is ``{field: (old, new)}``."""

    tenant_id: str
    kind: str
    at: datetime
    changes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    run_id: str = ""
    # The organization's Version after this change (0: logged before the column existed).
    version: int = 0


class ChangeLog:
    """Records and reads organization changes."""

    def __init__(self, tables: Tables) -> None:
        self._table = tables.changes

    def record(self, account_id: str, run_id: str, changes: Sequence[ChangeEntry]) -> int:
        """Store one run's changes in batched transactions; returns the number of entries."""
        partition = composite_key(account_id, token_key(run_id, "run id"))
        operations = []
        seen: set[str] = set()
        for change in changes:
            tenant = tenant_key(change.tenant_id)
            if tenant in seen:
                raise ValueError(f"organization {tenant} appears twice in one change record")
            seen.add(tenant)
            entity = {
                "PartitionKey": partition,
                "RowKey": tenant,
                "Kind": change.kind,
                "At": require_utc(change.at, "the change's timestamp"),
                "Changes": _changes_json(change.changes),
            }
            if change.version:
                entity["Version"] = change.version
            operations.append(("upsert", entity))
        return submit_batches(self._table, partition, operations)[1]

    def forget(self, account_id: str, run_id: str, tenant_ids: Sequence[str]) -> int:
        """Delete a run's entries for these organizations: changes that were never stored."""
        if not tenant_ids:
            return 0
        partition = composite_key(account_id, token_key(run_id, "run id"))
        return delete_rows(self._table, partition, [tenant_key(t) for t in tenant_ids])

    def logged_at(self, account_id: str, run_id: str) -> dict[str, datetime]:
        """``{tenant id: timestamp}`` of every entry of one run (two columns: cheap for a big run)."""
        partition = composite_key(account_id, token_key(run_id, "run id"))
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition},
                                           select=["RowKey", "At"])
        return {entity["RowKey"]: entity["At"] for entity in query}

    def for_run(self, account_id: str, run_id: str) -> list[ChangeEntry]:
        """Every change recorded by one run."""
        partition = composite_key(account_id, token_key(run_id, "run id"))
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
        return [_entry(entity) for entity in query]

    def for_organization(self, account_id: str, tenant_id: str, limit: int = 50) -> list[ChangeEntry]:
        """An organization's latest changes, newest first.

        Scans the account's change log with a server-side filter: fine for an operator's look-up,
        not for a hot path.
        """
        low, high = account_range(account_id)
        query = self._table.query_entities(
            "PartitionKey ge @low and PartitionKey lt @high and RowKey eq @tenant",
            parameters={"low": low, "high": high, "tenant": tenant_key(tenant_id)},
        )
        entries = sorted((_entry(entity) for entity in query), key=lambda entry: entry.at, reverse=True)
        return entries[:limit]


    def since(self, account_id: str, moment: datetime) -> list[ChangeEntry]:
        """Every change of the account stamped at or after ``moment``, oldest first (a replay's
        read: scans the account's change log with a server-side filter)."""
        low, high = account_range(account_id)
        query = self._table.query_entities(
            "PartitionKey ge @low and PartitionKey lt @high and At ge @since",
            parameters={"low": low, "high": high, "since": require_utc(moment, "since")},
        )
        return sorted((_entry(entity) for entity in query), key=lambda entry: (entry.at, entry.version))

    def prune(self, account_id: str, before: datetime, may_continue: Callable[[], bool]) -> tuple[int, bool]:
        """Delete the account's entries stamped before ``before``; ``(deleted, finished)``. Only the
        partitions of runs that began before it are read (run ids sort newest first)."""
        _, high = account_range(account_id)
        return delete_found(
            self._table, "PartitionKey gt @low and PartitionKey lt @high and At lt @before",
            {"low": composite_key(account_id, newest_first_bound(before)), "high": high,
             "before": require_utc(before, "before")}, may_continue=may_continue)


def _changes_json(changes: Mapping[str, tuple[str, str]]) -> str:
    pairs = {name: [old, new] for name, (old, new) in changes.items()}
    text = json.dumps(pairs, ensure_ascii=False)
    if len(text) <= MAX_STRING_CODE_UNITS // 2:
        return text
    cut = {name: [_cut(old), _cut(new)] for name, (old, new) in pairs.items()}
    return json.dumps(cut, ensure_ascii=False)


def _cut(value: str) -> str:
    return value if len(value) <= _LOGGED_VALUE_CHARS else value[:_LOGGED_VALUE_CHARS] + "…"


def _entry(entity: Mapping) -> ChangeEntry:
    changes = {name: (old, new) for name, (old, new) in json.loads(entity["Changes"]).items()}
    return ChangeEntry(
        tenant_id=entity["RowKey"],
        kind=entity["Kind"],
        at=entity["At"],
        changes=changes,
        run_id=entity["PartitionKey"].split(SEPARATOR, 1)[1],
        version=int(entity.get("Version") or 0),
    )
