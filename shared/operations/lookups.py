"""What operators look up (docs/http-api.md): organizations by tenant id or company name, an
organization's change history, an account's recent runs, a held ending with its organizations.

Plain reads with the stores handed in; the console and scripts call the same routes.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Callable, TypeVar

from azure.core.exceptions import ResourceNotFoundError

from shared.sync.stores import SyncStores

from .status import run_summary

# A search answers a person: a page of matches, not the account.
SEARCH_LIMIT = 50
# A held ending lists its organizations up to this many; the count says how many there are.
HELD_LIST_LIMIT = 500
RUNS_MAX_HOURS = 7 * 24
HELD_MAX_DAYS = 90
T = TypeVar("T")


def _nothing_yet(read: Callable[[], T], empty: T) -> T:
    """``read()``, or ``empty`` while the table it reads does not exist yet (nothing ran)."""
    try:
        return read()
    except ResourceNotFoundError:
        return empty


def search_organizations(stores: SyncStores, account_id: str, text: str, limit: int = SEARCH_LIMIT) -> list[dict]:
    """Organizations whose tenant id is ``text`` (one point read) or whose company name or domain
    holds it, case-insensitively (one scan of four columns of the account's partition)."""
    wanted = text.strip()
    tenant = _guid(wanted)
    if tenant is not None:
        stored = stores.organizations.get(account_id, tenant)
        return [_found(stored)] if stored is not None else []
    folded = wanted.casefold()

    def scan() -> list[dict]:
        found = []
        for row in stores.organizations.directory(account_id):
            if folded in str(row.get("CompanyName") or "").casefold() or folded in str(row.get("Domain") or "").casefold():
                found.append(_found(row))
                if len(found) >= limit:
                    break
        return found

    return sorted(_nothing_yet(scan, []), key=lambda row: (row["companyName"] or "").casefold())


def organization_history(stores: SyncStores, account_id: str, tenant_id: str, limit: int = 50) -> list[dict]:
    """The organization's latest changes, newest first, each with the run and who decided it."""
    return [{"at": entry.at.isoformat(), "kind": entry.kind, "runId": entry.run_id, "by": entry.by,
             "changes": {name: {"old": old, "new": new} for name, (old, new) in entry.changes.items()}}
            for entry in _nothing_yet(lambda: stores.changes.for_organization(account_id, tenant_id, limit), [])]


def recent_runs(stores: SyncStores, account_id: str, hours: int, now: datetime | None = None) -> list[dict]:
    """The account's runs started in the last ``hours``, newest first."""
    since = (now or datetime.now(timezone.utc)) - timedelta(hours=hours)
    return [run_summary(record) for record in _nothing_yet(lambda: stores.runs.since(account_id, since), [])]


def held_endings(stores: SyncStores, account_id: str, days: int, now: datetime | None = None) -> dict:
    """The account's held endings waiting for a decision, and those decided in the last ``days``."""
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    waiting = _nothing_yet(lambda: stores.held.pending(account_id), [])
    decided = _nothing_yet(lambda: stores.held.decided_since(account_id, since), [])  # approving ones too
    return {"waiting": [_held_summary(held) for held in waiting],
            "decided": [_held_summary(held) for held in decided]}


def _held_summary(held) -> dict:
    return {"heldId": held.held_id, "status": held.status, "organizations": held.tenant_count,
            "heldAt": held.held_at.isoformat(), "decidedBy": held.decided_by,
            "decidedAt": held.decided_at.isoformat() if held.decided_at else None,
            "endedCount": held.ended_count, "keptCount": held.kept_count}


def held_ending(stores: SyncStores, account_id: str, held_id: str) -> dict | None:
    """A held ending, its decision, and the organizations it would end (names from one scan)."""
    held = _nothing_yet(lambda: stores.held.get(account_id, held_id), None)
    if held is None:
        return None
    tenants = stores.held.tenant_ids(account_id, held_id)
    listed = set(tenants[:HELD_LIST_LIMIT])
    names = _nothing_yet(lambda: {row["RowKey"]: row for row in stores.organizations.directory(account_id)
                                  if row["RowKey"] in listed}, {})
    return {
        "heldId": held.held_id, "status": held.status, "runId": held.run_id, "heldAt": held.held_at.isoformat(),
        "decidedBy": held.decided_by, "decidedAt": held.decided_at.isoformat() if held.decided_at else None,
        "endedCount": held.ended_count, "keptCount": held.kept_count, "organizationCount": len(tenants),
        "organizations": [_found(names[tenant]) if tenant in names
                          else {"customerTenantId": tenant, "companyName": None, "domain": None, "status": None}
                          for tenant in tenants[:HELD_LIST_LIMIT]],
    }


def _found(row: dict) -> dict:
    return {"customerTenantId": row["RowKey"], "companyName": row.get("CompanyName"),
            "domain": row.get("Domain"), "status": row.get("Status")}


def _guid(text: str) -> str | None:
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
