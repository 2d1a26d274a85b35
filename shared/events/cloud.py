"""What a stored change looks like to the Platform: a CloudEvents 1.0 event (docs/events.md).

Pure functions. The organization in ``data`` is the row as the change left it: the stored row when
nothing was written since, else the stored row with the later changes undone (their old values),
so an event published late, or replayed, still says what that change stored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Iterable, Mapping

from shared.contacts.mapping import CONTENT_FIELDS
from shared.store import CREATE, END, EXCLUDE, INCLUDE, STATUS_ACTIVE, STATUS_RELATIONSHIP_ENDED, UPDATE

# Names this service; every event type starts with it.
TYPE_PREFIX = "pcsync"
CREATED, UPDATED, ENDED, REACTIVATED, EXCLUDED, INCLUDED = (
    f"{TYPE_PREFIX}.organization.{name}"
    for name in ("created", "updated", "ended", "reactivated", "excluded", "included"))
EVENT_TYPES = (CREATED, UPDATED, ENDED, REACTIVATED, EXCLUDED, INCLUDED)
# The Organizations contract's properties (docs/storage.md), the Version among them.
CONTRACT_PROPERTIES = (*CONTENT_FIELDS, "Status", "FirstSyncedAt", "LastChangedAt", "Version")


def event_type(kind: str, changes: Mapping[str, tuple[str, str]]) -> str:
    """The event type of a change-log kind; an update that brings an ended organization back is a reactivation."""
    if kind == UPDATE:
        status = changes.get("Status")
        return REACTIVATED if status is not None and status[0] == STATUS_RELATIONSHIP_ENDED else UPDATED
    types = {CREATE: CREATED, END: ENDED, EXCLUDE: EXCLUDED, INCLUDE: INCLUDED}
    if kind not in types:
        raise ValueError(f"no event type for a change of kind {kind!r}")
    return types[kind]


def event_id(account_id: str, tenant_id: str, version: int) -> str:
    """One id per stored change, the same on every redelivery and replay of it."""
    return f"{account_id}/{tenant_id}/{version}"


def organization_as_left(row: Mapping[str, object], at: datetime, version: int,
                         later: Iterable[Mapping[str, tuple[str, str]]]) -> dict:
    """The contract properties as the change of ``version`` at ``at`` left them: ``row`` (the
    stored organization) with ``later`` (the changed fields of each later change, newest first) undone."""
    organization = {name: row.get(name, "") for name in CONTRACT_PROPERTIES}
    for changes in later:
        for name, (old, _new) in changes.items():
            organization[name] = old
    organization["Version"] = version
    organization["LastChangedAt"] = at
    return {name: _json_value(value) for name, value in organization.items()}


def organization_created(at: datetime, version: int, changes: Mapping[str, tuple[str, str]]) -> dict:
    """The contract properties as a create left them: its changes hold every non-empty content value."""
    organization: dict[str, object] = {name: "" for name in CONTRACT_PROPERTIES}
    organization.update({name: new for name, (_old, new) in changes.items()})
    organization.update(Status=STATUS_ACTIVE, FirstSyncedAt=at, LastChangedAt=at, Version=version)
    return {name: _json_value(value) for name, value in organization.items()}


def cloud_event(account_id: str, tenant_id: str, kind: str, at: datetime, version: int,
                changes: Mapping[str, tuple[str, str]], organization: Mapping[str, object]) -> dict:
    """The event as a CloudEvents 1.0 structured-JSON object (what the topic receives)."""
    return {
        "specversion": "1.0",
        "id": event_id(account_id, tenant_id, version),
        "type": event_type(kind, changes),
        "source": f"/{TYPE_PREFIX}/accounts/{account_id}",
        "subject": f"accounts/{account_id}/organizations/{tenant_id}",
        "time": _json_value(at),
        "datacontenttype": "application/json",
        "data": {
            "accountId": account_id,
            "customerTenantId": tenant_id,
            "version": version,
            "organization": dict(organization),
            "changes": {name: {"old": old, "new": new} for name, (old, new) in changes.items()},
        },
    }


def _json_value(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value
