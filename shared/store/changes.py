"""The change log (docs/storage.md): which fields of which organization changed, old and new, in which run.

PartitionKey = ``{account}|{run id}`` so one run's entries go in transactions of 100;
RowKey = customer tenant id, so an organization has one entry per run (re-recording it in the
same run, e.g. after a crash and replay, replaces the entry instead of doubling it).

Each entry is also written to the account's organization partition: PartitionKey = account id,
RowKey = ``{tenant id}|{run id}``, so one organization's history, newest first (run ids sort newest
first), is a range read however long the log, and a run's entries still go 100 to a transaction
(two transactions per 100 changes in all).

An entry is written just before its organization and carries the same timestamp as the row's
``LastChangedAt``: that is how a later run tells a stored change from one whose write never landed
(see :func:`shared.sync.change_log.settle_change_log`).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Sequence

from shared.contacts.mapping import MAX_STRING_CODE_UNITS
from shared.keys import (AFTER_SEPARATOR, SEPARATOR, account_key, account_range, composite_key, newest_first_bound,
                         require_utc, tenant_key, token_key)
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
    by: str = ""  # the operator whose decision this is (name and object id); "" for the sync's own changes
    # The organization's Version after this change (0: logged before the column existed).
    version: int = 0


class ChangeLog:
    """Records and reads organization changes."""

    def __init__(self, tables: Tables) -> None:
        self._table = tables.changes

    def record(self, account_id: str, run_id: str, changes: Sequence[ChangeEntry]) -> int:
        """Store one run's changes in batched transactions; returns the number of entries."""
        run = token_key(run_id, "run id")
        partition, by_organization = composite_key(account_id, run), account_key(account_id)
        operations, copies = [], []
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
                **({"By": change.by[:200]} if change.by else {}),
            }
            if change.version:
                entity["Version"] = change.version
            operations.append(("upsert", entity))
            copies.append(("upsert", {**entity, "PartitionKey": by_organization, "RowKey": _history_key(tenant, run)}))
        # The organization's copy first: an entry the run's partition holds is always in its history.
        submit_batches(self._table, by_organization, copies)
        return submit_batches(self._table, partition, operations)[1]

    def forget(self, account_id: str, run_id: str, tenant_ids: Sequence[str]) -> int:
        """Delete a run's entries for these organizations: changes that were never stored."""
        if not tenant_ids:
            return 0
        run = token_key(run_id, "run id")
        tenants = [tenant_key(t) for t in tenant_ids]
        forgotten = delete_rows(self._table, composite_key(account_id, run), tenants)
        delete_rows(self._table, account_key(account_id), [_history_key(tenant, run) for tenant in tenants])
        return forgotten

    def stored(self, account_id: str, run_id: str, tenant_ids: Sequence[str]) -> None:
        """The organization writes of these entries landed (the event outbox's log hands them on)."""

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
        """An organization's latest changes, newest first: a range read of its history.

        An organization with no history entries may have changed before they were written: its
        entries are then looked for across the account's log (a filtered scan, once per look-up).
        """
        tenant = tenant_key(tenant_id)
        query = self._table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": account_key(account_id), "low": tenant + SEPARATOR, "high": tenant + AFTER_SEPARATOR},
            results_per_page=min(limit, 1000))
        entries = [_entry(entity) for entity in itertools.islice(query, limit)]
        if entries:
            return entries
        low, high = account_range(account_id)
        query = self._table.query_entities(
            "PartitionKey ge @low and PartitionKey lt @high and RowKey eq @tenant",
            parameters={"low": low, "high": high, "tenant": tenant})
        return sorted((_entry(entity) for entity in query), key=lambda entry: entry.at, reverse=True)[:limit]

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
        before = require_utc(before, "before")
        deleted, finished = delete_found(
            self._table, "PartitionKey gt @low and PartitionKey lt @high and At lt @before",
            {"low": composite_key(account_id, newest_first_bound(before)), "high": high, "before": before},
            may_continue=may_continue)
        if not finished:
            return deleted, False
        # The organizations' copies: one partition, in tenant order, so filtered by time.
        copies, finished = delete_found(self._table, "PartitionKey eq @pk and At lt @before",
                                        {"pk": account_key(account_id), "before": before}, may_continue=may_continue)
        return deleted + copies, finished


def _history_key(tenant: str, run: str) -> str:
    return f"{tenant}{SEPARATOR}{run}"


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
        tenant_id=entity["RowKey"].split(SEPARATOR, 1)[0],
        kind=entity["Kind"],
        at=entity["At"],
        changes=changes,
        run_id=(entity["RowKey"] if SEPARATOR in entity["RowKey"] else entity["PartitionKey"]).split(SEPARATOR, 1)[1],
        by=entity.get("By", ""),
        version=int(entity.get("Version") or 0),
    )
