"""The webhook event inbox in Table Storage: every accepted event, stored before it is answered.

``PartitionKey`` = account id, ``RowKey`` = the event's key (a hash of its identity), so a
Partner Center retry or a replay lands on the same row and is stored once. A row's ``Status``:

- ``pending``: accepted, not yet processed (or its last attempt failed: ``Attempts``, ``LastError``);
- ``processed``: the customer was synced (``RunId`` names the run);
- ``failed``: gave up after :data:`MAX_ATTEMPTS` attempts; the next reconciliation covers it;
- ``ignored``: a verified event we do not act on; no longer written (the receiver stores only recent
  relationship events, docs/webhooks.md), kept so rows written before still read.

Status changes are ETag-guarded, so two workers processing one event never overwrite each other.

Pending and failed events are found by key, however many processed ones the table holds: each has
an index row ``pending~{key}`` or ``failed~{key}`` in the small ``WebhookEventsIndex`` table (the
event table's name plus ``Index``). An index row is written before the status it stands for and
deleted after it changes, so a crash leaves at most an index row too many, which readers check
against the event and pass over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable, Iterator

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

from shared.store import account_key
from shared.store.connections import StorageConnection, as_connection
from shared.store.tables import delete_found

from .events import PartnerCenterEvent

TABLE_NAME = "WebhookEvents"
PENDING, PROCESSED, FAILED, IGNORED = "pending", "processed", "failed", "ignored"
# Partner Center itself gives up after 10 deliveries; we retry processing as often.
MAX_ATTEMPTS = 10
_MAX_ERROR_CHARS = 1000
_MAX_BODY_CHARS = 16 * 1024
_INDEXED = (PENDING, FAILED)  # the statuses read by key
_END = "~"  # after every character of an event key: ends a prefix range


@dataclass(frozen=True)
class StoredEvent:
    """An event row as read back."""

    account_id: str
    key: str
    event_name: str
    customer_tenant_id: str | None
    status: str
    attempts: int
    last_error: str
    received_at: datetime
    etag: str

    def as_dict(self) -> dict:
        return {
            "event": self.key,
            "eventName": self.event_name,
            "customerTenantId": self.customer_tenant_id,
            "status": self.status,
            "attempts": self.attempts,
            "lastError": self.last_error,
            "receivedAt": self.received_at.isoformat(),
        }


class WebhookEventStore:
    """The ``WebhookEvents`` table (or ``table_name``), created when missing."""

    def __init__(self, service: TableServiceClient, table_name: str = TABLE_NAME, *, create: bool = True) -> None:
        """``create=False`` for reads only: a missing table then reads as no events."""
        self.service = service
        self.table_name = table_name
        self.index_table_name = table_name + "Index"
        if create:
            for name in (table_name, self.index_table_name):
                try:
                    service.create_table(name)
                except ResourceExistsError:
                    pass
        self._table: TableClient = service.get_table_client(table_name)
        self._index: TableClient = service.get_table_client(self.index_table_name)

    @classmethod
    def open(cls, connection: StorageConnection | str, table_name: str = TABLE_NAME, *,
             create: bool = True) -> "WebhookEventStore":
        """The store on its own service client (a :class:`StorageConnection` or a connection string)."""
        return cls(as_connection(connection).table_service(), table_name, create=create)

    def accept(self, account_id: str, event: PartnerCenterEvent, body: bytes, now: datetime | None = None,
               ) -> tuple[StoredEvent, bool]:
        """Store the event durably; returns it and whether it is new (False: already stored)."""
        now = now or datetime.now(timezone.utc)
        entity = {
            "PartitionKey": account_key(account_id),
            "RowKey": event.key,
            "EventName": event.event_name,
            "ResourceUri": event.resource_uri,
            "ResourceName": event.resource_name,
            "AuditUri": event.audit_uri,
            "ResourceChangeUtcDate": event.resource_change_utc_date,
            "CustomerTenantId": event.customer_tenant_id or "",
            "Status": PENDING if event.is_relationship_event else IGNORED,
            "Attempts": 0,
            "LastError": "",
            "ReceivedAt": now,
            "Body": body.decode("utf-8", "replace")[:_MAX_BODY_CHARS],
        }
        if entity["Status"] in _INDEXED:
            self._index.upsert_entity(_mark(entity["PartitionKey"], entity["Status"], event.key))
        try:
            self._table.create_entity(entity)
        except ResourceExistsError:
            stored = self.get(account_id, event.key)
            if stored is None:
                raise  # deleted between our insert and read: let the sender retry
            if stored.status != entity["Status"]:
                self._unmark(stored.account_id, entity["Status"], stored.key)
            return stored, False
        return self.get(account_id, event.key), True

    def get(self, account_id: str, key: str) -> StoredEvent | None:
        try:
            entity = self._table.get_entity(account_key(account_id), key)
        except ResourceNotFoundError:
            return None
        return _stored(entity)

    def with_status(self, account_id: str, status: str, *, top: int | None = None) -> Iterator[StoredEvent]:
        """The account's events in ``status`` (pending or failed: read by key), in key order."""
        if status not in _INDEXED:
            raise ValueError(f"only {' and '.join(_INDEXED)} events are listed, not {status!r}")
        prefix = _mark_prefix(status)
        marks = self._index.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": account_key(account_id), "low": prefix, "high": prefix + _END}, select=["RowKey"])
        count = 0
        for mark in marks:
            if top is not None and count >= top:
                return
            stored = self.get(account_id, mark["RowKey"][len(prefix):])
            if stored is not None and stored.status == status:  # else a crash's leftover: passed over
                count += 1
                yield stored

    def mark_processed(self, event: StoredEvent, run_id: str, now: datetime | None = None) -> bool:
        """Record a successful processing; False when someone else changed the row meanwhile."""
        return self._update(event, {"Status": PROCESSED, "Attempts": event.attempts + 1, "LastError": "",
                                    "RunId": run_id, "ProcessedAt": now or datetime.now(timezone.utc)})

    def mark_attempt_failed(self, event: StoredEvent, error: str, now: datetime | None = None) -> bool:
        """Record a failed attempt: still pending, or ``failed`` after :data:`MAX_ATTEMPTS`."""
        attempts = event.attempts + 1
        return self._update(event, {
            "Status": FAILED if attempts >= MAX_ATTEMPTS else PENDING,
            "Attempts": attempts,
            "LastError": error[:_MAX_ERROR_CHARS],
            "LastAttemptAt": now or datetime.now(timezone.utc),
        })

    def prune(self, account_id: str, before: datetime, may_continue: Callable[[], bool]) -> tuple[int, bool]:
        """Delete the account's processed and ignored events received before ``before``; pending and
        failed ones stay whatever their age. Returns ``(deleted, finished)``."""
        finished_event = "( Status eq @processed or Status eq @ignored )"
        return delete_found(
            self._table, f"PartitionKey eq @pk and ReceivedAt lt @before and {finished_event}",
            {"pk": account_key(account_id), "before": before, "processed": PROCESSED, "ignored": IGNORED},
            may_continue=may_continue)

    def delete_table(self) -> None:
        """Drop the tables (tests)."""
        self.service.delete_table(self.table_name)
        self.service.delete_table(self.index_table_name)

    def _update(self, event: StoredEvent, changes: dict) -> bool:
        """Merge ``changes`` if the row is as read, moving its index row along with its status."""
        after = changes.get("Status", event.status)
        moved = after != event.status
        if moved and after in _INDEXED:
            self._index.upsert_entity(_mark(event.account_id, after, event.key))
        try:
            self._table.update_entity({"PartitionKey": event.account_id, "RowKey": event.key, **changes},
                                      mode=UpdateMode.MERGE, etag=event.etag,
                                      match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False  # an index row left for the new status is passed over by readers
        if moved:
            self._unmark(event.account_id, event.status, event.key)
        return True

    def _unmark(self, account: str, status: str, key: str) -> None:
        if status in _INDEXED:
            try:
                self._index.delete_entity(account, _mark_prefix(status) + key)
            except ResourceNotFoundError:
                pass  # an event stored before the index existed has none


def _mark_prefix(status: str) -> str:
    return f"{status}{_END}"


def _mark(account: str, status: str, key: str) -> dict:
    return {"PartitionKey": account, "RowKey": _mark_prefix(status) + key}


def _stored(entity) -> StoredEvent:
    received = entity.get("ReceivedAt")
    return StoredEvent(
        account_id=entity["PartitionKey"],
        key=entity["RowKey"],
        event_name=entity.get("EventName", ""),
        customer_tenant_id=entity.get("CustomerTenantId") or None,
        status=entity.get("Status", PENDING),
        attempts=int(entity.get("Attempts") or 0),
        last_error=entity.get("LastError", ""),
        received_at=received if isinstance(received, datetime) else datetime.min.replace(tzinfo=timezone.utc),
        etag=entity.metadata["etag"],
    )
