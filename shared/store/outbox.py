"""The event outbox (docs/events.md): stored organization changes the Platform's topic has not accepted yet.

PartitionKey = account id, RowKey = ``{customer tenant id}|{run id}``: one row per change-log
entry, written with it (after the entry, before the organization) by :class:`OutboxChangeLog`,
taken back with it when the organization write never landed, and deleted once the topic accepted
its event. What waits is one partition query, however long the change log grows.

A row holds what the event needs that the organization row will not keep: the kind, the moment,
the Version the change stores and its changed fields (uncut, so a later change can be undone to
rebuild the organization as this one left it).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Mapping, Sequence

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableTransactionError

from shared.contacts.mapping import MAX_STRING_CODE_UNITS
from shared.keys import SEPARATOR, account_key, require_utc, tenant_key, token_key
from shared.store import outbox_packs as packing
from shared.store.changes import ChangeEntry, ChangeLog
from shared.store.organizations import CREATE
from shared.store.tables import MAX_BATCH, Tables, batches, delete_rows, store_error


@dataclass(frozen=True)
class PendingChange:
    """One outbox row: a change whose event the topic has not accepted yet."""

    tenant_id: str
    run_id: str
    kind: str
    at: datetime
    version: int
    changes: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    etag: str = ""  # of the row, or of its pack
    pack: str = ""  # the RowKey of the pack it waits in; "" for a row of its own


class EventOutbox:
    """Adds, lists and clears the changes waiting to be published."""

    def __init__(self, tables: Tables) -> None:
        self._table = tables.outbox

    def add(self, account_id: str, run_id: str, changes: Sequence[ChangeEntry], *,
            packed: bool = False) -> list[PendingChange]:
        """Record the changes; returns them as rows, each with the ETag its write got (a delete that
        names it never takes a row re-recorded since). ``packed``: the ``created`` changes go into
        packs (:mod:`shared.store.outbox_packs`), for a publisher that is handed them as they land."""
        partition = account_key(account_id)
        recorded: list[PendingChange] = []
        if packed:
            created = [c for c in changes if c.kind == CREATE and c.version == 1]
            if created:
                recorded = self._add_packs(partition, run_id, created)
                done = {p.tenant_id for p in recorded}
                changes = [c for c in changes if c.tenant_id not in done]
        if not changes:
            return recorded
        operations = [("upsert", _entity(partition, run_id, change)) for change in changes]
        etags: list[str] = []
        for number, batch in enumerate(batches(operations)):
            try:
                answers = self._table.submit_transaction(batch)
            except TableTransactionError as exc:
                row = batch[exc.index][1]["RowKey"] if 0 <= exc.index < len(batch) else None
                raise store_error(self._table, partition, number, exc, len(etags), row) from exc
            except AzureError as exc:
                raise store_error(self._table, partition, number, exc, len(etags), None) from exc
            etags.extend(str((answer or {}).get("etag") or "") for answer in answers)
        return recorded + [PendingChange(c.tenant_id, run_id, c.kind, c.at, c.version, c.changes, etag)
                           for c, etag in zip(changes, etags)]

    def _add_packs(self, partition: str, run_id: str, changes: Sequence[ChangeEntry]) -> list[PendingChange]:
        """Write ``changes`` in packs (an entity each); returns those packed, not those too large for
        a pack (left to rows of their own)."""
        given = {tenant_key(c.tenant_id): c.tenant_id for c in changes}
        entities, _alone = packing.pack_entities(partition, run_id, [
            packing.Entry(tenant_key(c.tenant_id), c.kind, require_utc(c.at, "the change's timestamp"), c.version,
                        c.changes) for c in changes])
        recorded = []
        for entity in entities:
            try:
                answer = self._table.create_entity(entity)
            except AzureError as exc:
                raise store_error(self._table, partition, 0, exc, len(recorded), entity["RowKey"]) from exc
            etag = str((answer or {}).get("etag") or "")
            recorded.extend(PendingChange(given[e.tenant_id], run_id, e.kind, e.at, e.version, e.changes, etag,
                                          pack=entity["RowKey"]) for e in packing.entries(entity))
        return recorded

    def forget(self, account_id: str, run_id: str, tenant_ids: Sequence[str]) -> int:
        """Take back the run's changes of these organizations, in its packs (rewritten without them)
        and in rows of their own."""
        if not tenant_ids:
            return 0
        partition, wanted = account_key(account_id), {tenant_key(t) for t in tenant_ids}
        for entity in self._run_packs(partition, run_id):
            self._shrink(entity, wanted)
        return delete_rows(self._table, partition, [_row_key(t, run_id) for t in tenant_ids])

    def _shrink(self, entity: Mapping, tenant_ids: set[str]) -> None:
        """Rewrite one pack without ``tenant_ids`` (delete it when nothing is left); a pack that moved
        meanwhile (unpacked, or shrunk by another) is read again."""
        for _ in range(5):
            if not tenant_ids & packing.pack(entity).tenant_ids:
                return
            rest = packing.without(entity, tenant_ids)
            etag = str((getattr(entity, "metadata", {}) or {}).get("etag") or "")
            try:
                if rest is None:
                    self._table.delete_entity(entity["PartitionKey"], entity["RowKey"], etag=etag,
                                              match_condition=MatchConditions.IfNotModified)
                else:
                    self._table.update_entity(rest, mode="replace", etag=etag,
                                              match_condition=MatchConditions.IfNotModified)
                return
            except ResourceModifiedError:
                try:
                    entity = self._table.get_entity(entity["PartitionKey"], entity["RowKey"])
                except ResourceNotFoundError:
                    return  # unpacked: its rows are deleted with the others
            except ResourceNotFoundError:
                return
        raise RuntimeError(f"{self._table.table_name}: pack {entity['RowKey']} kept changing")

    def _run_packs(self, partition: str, run_id: str) -> list:
        return list(self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @first and RowKey lt @end and Run eq @run",
            parameters={"pk": partition, "first": packing.PREFIX, "end": packing.END, "run": run_id}))

    def of_run(self, account_id: str, run_id: str) -> dict[str, datetime]:
        """``{tenant id: the change's moment}`` of what one run left waiting, packed or not (a
        filtered read of the account's partition: what waits, which is small)."""
        query = self._table.query_entities("PartitionKey eq @pk and Run eq @run",
                                           parameters={"pk": account_key(account_id), "run": run_id})
        found: dict[str, datetime] = {}
        for entity in query:
            if packing.is_pack(entity["RowKey"]):
                found.update({entry.tenant_id: entry.at for entry in packing.entries(entity)})
            else:
                found[entity["RowKey"].partition(SEPARATOR)[0]] = entity["At"]
        return found

    def packs(self, account_id: str) -> list[packing.Pack]:
        """The account's packs, without their changes (what they block and whose they are)."""
        query = self._table.query_entities(
            "PartitionKey eq @pk and RowKey ge @first and RowKey lt @end",
            parameters={"pk": account_key(account_id), "first": packing.PREFIX, "end": packing.END},
            select=["RowKey", "Run", "At", "Count", "Tenants"])
        return [packing.pack(entity) for entity in query]

    def unpack(self, account_id: str, row_key: str) -> int:
        """Turn one pack into rows of their own, each inserted only where the run has no row for that
        organization (one it wrote since is newer), then delete the pack; returns the rows written."""
        partition = account_key(account_id)
        try:
            entity = self._table.get_entity(partition, row_key)
        except ResourceNotFoundError:
            return 0  # published and deleted, or unpacked by another
        run_id = entity["Run"]
        rows = [_entity(partition, run_id, e) for e in packing.entries(entity)]
        written = 0
        for batch in batches([("create", row) for row in rows]):
            try:
                self._table.submit_transaction(batch)
                written += len(batch)
            except TableTransactionError:
                for _, row in batch:  # one is there already: insert each alone
                    try:
                        self._table.create_entity(row)
                        written += 1
                    except ResourceExistsError:
                        continue
        try:
            self._table.delete_entity(partition, row_key, etag=entity.metadata["etag"],
                                      match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            pass  # shrunk meanwhile: the next pass unpacks it again, its rows already there stay
        return written

    def pending(self, account_id: str, limit: int | None = None) -> list[PendingChange]:
        """What waits in rows of its own (not packed), each organization's changes in Version order."""
        query = self._table.query_entities("PartitionKey eq @pk and RowKey lt @first",
                                           parameters={"pk": account_key(account_id), "first": packing.PREFIX},
                                           results_per_page=min(limit, 1000) if limit else None)
        found = []
        for entity in query:
            found.append(_pending(entity))
            if limit is not None and len(found) >= limit:
                break
        return sorted(found, key=lambda p: (p.tenant_id, p.version, p.at))

    def waiting(self, account_id: str) -> tuple[int, datetime | None]:
        """``(count, oldest change's moment)`` of what waits: two columns, one partition."""
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": account_key(account_id)},
                                           select=["RowKey", "At", "Count"])
        count, oldest = 0, None
        for entity in query:
            count += int(entity.get("Count") or 1)  # a pack counts its changes
            oldest = entity["At"] if oldest is None else min(oldest, entity["At"])
        return count, oldest

    def remove(self, account_id: str, published: Sequence[PendingChange]) -> int:
        """Delete rows whose events the topic accepted, 100 a transaction; a row re-recorded since it
        was read (its ETag moved) stays for its new content; one already gone is fine. Returns how many went.

        A pack goes whole with its changes here: the caller hands every change of it that landed (the
        others are taken back anyway), and a pack only ever shrinks, so nothing newer goes with it."""
        partition = account_key(account_id)
        packed = [c for c in published if c.pack]
        for row_key in dict.fromkeys(c.pack for c in packed):
            self._table.delete_entity(partition, row_key)  # one already gone (unpacked) is fine
        published = [c for c in published if not c.pack]
        removed = len(packed)
        for start in range(0, len(published), MAX_BATCH):
            chunk = published[start:start + MAX_BATCH]
            try:
                self._table.submit_transaction([("delete", {"PartitionKey": partition,
                                                            "RowKey": _row_key(c.tenant_id, c.run_id)},
                                                 {"etag": c.etag, "match_condition": MatchConditions.IfNotModified})
                                                for c in chunk])
                removed += len(chunk)
            except TableTransactionError:
                removed += self._remove_one_by_one(partition, chunk)  # one moved or went: settle each alone
        return removed

    def _remove_one_by_one(self, partition: str, changes: Sequence[PendingChange]) -> int:
        removed = 0
        for change in changes:
            try:
                self._table.delete_entity(partition, _row_key(change.tenant_id, change.run_id), etag=change.etag,
                                          match_condition=MatchConditions.IfNotModified)
                removed += 1
            except (ResourceModifiedError, ResourceNotFoundError):
                continue
        return removed


class OutboxChangeLog(ChangeLog):
    """The change log that also fills the outbox: every entry recorded is an event to publish, every
    entry taken back (a write that never landed) is not. Used when events are configured."""

    def __init__(self, tables: Tables, outbox: EventOutbox) -> None:
        super().__init__(tables)
        self.outbox = outbox
        # The rows recorded and not yet stored, by (account, run, tenant): what :meth:`stored` hands on.
        self._recorded: dict[tuple[str, str, str], PendingChange] = {}
        self._listeners: list[Callable[[str, list[PendingChange]], None]] = []
        self._writer = ThreadPoolExecutor(max_workers=2, thread_name_prefix="outbox")

    def record(self, account_id: str, run_id: str, changes: Sequence[ChangeEntry]) -> int:
        # The entry and the outbox row at once (two tables), then (the caller) the organization: a
        # stored change always has both, and a process that dies in between leaves entries or rows
        # the next run settles (:meth:`logged_at` finds both).
        # With a publisher listening, new organizations go in packs: it deletes each pack whole.
        adding = self._writer.submit(self.outbox.add, account_id, run_id, changes, packed=bool(self._listeners))
        try:
            recorded = super().record(account_id, run_id, changes)
        finally:
            rows = adding.result()
        if self._listeners:
            self._recorded.update({(account_id, run_id, row.tenant_id): row for row in rows})
        return recorded

    def forget(self, account_id: str, run_id: str, tenant_ids: Sequence[str]) -> int:
        for tenant_id in tenant_ids:
            self._recorded.pop((account_id, run_id, tenant_id), None)
        self.outbox.forget(account_id, run_id, tenant_ids)
        return super().forget(account_id, run_id, tenant_ids)

    def logged_at(self, account_id: str, run_id: str) -> dict[str, datetime]:
        """The run's entries, and its outbox rows still waiting (a process may die after the row and
        before the entry): settling takes back both of a write that never landed."""
        logged = self.outbox.of_run(account_id, run_id)
        logged.update(super().logged_at(account_id, run_id))
        return logged

    def stored(self, account_id: str, run_id: str, tenant_ids: Sequence[str]) -> None:
        """These organizations' writes landed: their outbox rows go to the newest listener (a publisher
        sending them while the run goes on, docs/events.md), the outbox still holding them."""
        rows = [row for t in tenant_ids if (row := self._recorded.pop((account_id, run_id, t), None)) is not None]
        listeners = self._listeners
        if rows and listeners:
            listeners[-1](account_id, rows)

    def listen(self, listener: Callable[[str, list[PendingChange]], None]) -> None:
        self._listeners.append(listener)

    def stop_listening(self, listener: Callable[[str, list[PendingChange]], None]) -> None:
        self._listeners.remove(listener)
        if not self._listeners:
            self._recorded.clear()


def _entity(partition: str, run_id: str, change: ChangeEntry | packing.Entry) -> dict:
    return {
        "PartitionKey": partition,
        "RowKey": _row_key(change.tenant_id, run_id),
        "Kind": change.kind,
        "At": require_utc(change.at, "the change's timestamp"),
        "Version": change.version,
        "Changes": _changes_json(change.changes),
        "Run": run_id,  # what a run that died leaves is found by it (:meth:`of_run`)
    }


def _row_key(tenant_id: str, run_id: str) -> str:
    return f"{tenant_key(tenant_id)}{SEPARATOR}{token_key(run_id, 'run id')}"


def _changes_json(changes: Mapping[str, tuple[str, str]]) -> str:
    text = json.dumps({name: [old, new] for name, (old, new) in changes.items()}, ensure_ascii=False)
    if len(text) > MAX_STRING_CODE_UNITS // 2:
        # Only Table Storage's limit cuts a value; an older state rebuilt from it is then cut too.
        text = json.dumps({name: [old[:2000], new[:2000]] for name, (old, new) in changes.items()},
                          ensure_ascii=False)
    return text


def _pending(entity: Mapping) -> PendingChange:
    tenant, _, run_id = entity["RowKey"].partition(SEPARATOR)
    metadata = getattr(entity, "metadata", {}) or {}
    return PendingChange(
        tenant_id=tenant, run_id=run_id, kind=entity["Kind"], at=entity["At"], version=int(entity["Version"]),
        changes={name: (old, new) for name, (old, new) in json.loads(entity["Changes"]).items()},
        etag=str(metadata.get("etag") or ""),
    )
