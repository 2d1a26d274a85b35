"""Outbox packs (docs/events.md): a page's new organizations waiting in one outbox entity, not one each.

While a run's events are published as it goes (``shared/events/live.py``), the ``created`` changes
of each page go into packs: PartitionKey = account id, RowKey = ``~pack~{run id}~{random}``, their
changes compressed in ``Changes`` (binary), the tenants in ``Tenants``, the run in ``Run``, the
oldest change's moment in ``At`` and how many in ``Count``. One write and one delete per page
instead of one each per customer, whose batch encoding was most of what events cost a first run
(docs/performance.md, "Organization events").

A pack only ever shrinks (an entry taken back rewrites it without that entry) and goes whole: the
publisher during the run deletes it once the topic took its events; whatever it could not send is
unpacked by the next pass into rows of the usual kind (``{tenant}|{run id}``), inserted only where
no such row is (a row the run wrote since is newer).
"""

from __future__ import annotations

import json
import uuid
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Mapping, Sequence

from shared.keys import token_key

PREFIX = "~pack~"
END = "~pack~~"  # the first RowKey after every pack's
# Changes of a pack, compressed: a binary property holds at most 64 KiB.
MAX_PACKED_BYTES = 60 * 1024
MAX_ENTRIES = 100


@dataclass(frozen=True)
class Entry:
    """One change in a pack."""

    tenant_id: str
    kind: str
    at: datetime
    version: int
    changes: Mapping[str, tuple[str, str]]


@dataclass(frozen=True)
class Pack:
    """A pack as the pass sees it before it unpacks: what it blocks and whose it is."""

    row_key: str
    run_id: str
    at: datetime
    count: int
    tenant_ids: frozenset[str]


def pack_entities(partition: str, run_id: str, entries: Sequence[Entry]) -> tuple[list[dict], list[Entry]]:
    """The entities holding ``entries`` (at most :data:`MAX_ENTRIES` each, each within the binary
    property's limit: a pack too large is halved), and the entries too large for any pack."""
    run = token_key(run_id, "run id")
    found: list[dict] = []
    alone: list[Entry] = []
    pending = [list(entries[start:start + MAX_ENTRIES]) for start in range(0, len(entries), MAX_ENTRIES)]
    while pending:
        chunk = pending.pop(0)
        packed = _packed(chunk)
        if len(packed) > MAX_PACKED_BYTES and len(chunk) > 1:
            middle = len(chunk) // 2
            pending[:0] = [chunk[:middle], chunk[middle:]]
            continue
        if len(packed) > MAX_PACKED_BYTES:
            alone.extend(chunk)
            continue
        found.append({
            "PartitionKey": partition,
            "RowKey": f"{PREFIX}{run}~{uuid.uuid4().hex[:16]}",
            "Run": run_id,
            "At": min(entry.at for entry in chunk),
            "Count": len(chunk),
            "Tenants": ",".join(entry.tenant_id for entry in chunk),
            "Changes": packed,
        })
    return found, alone


def entries(entity: Mapping) -> list[Entry]:
    """The changes a pack entity holds."""
    return [Entry(tenant, kind, datetime.fromisoformat(at), int(version),
                  {name: (old, new) for name, (old, new) in changes.items()})
            for tenant, kind, at, version, changes in json.loads(zlib.decompress(bytes(entity["Changes"])))]


def without(entity: Mapping, tenant_ids: set[str]) -> dict | None:
    """The pack without the changes of ``tenant_ids``; ``None`` when nothing would be left."""
    kept = [entry for entry in entries(entity) if entry.tenant_id not in tenant_ids]
    if not kept:
        return None
    return {**{name: entity[name] for name in ("PartitionKey", "RowKey", "Run")},
            "At": min(entry.at for entry in kept), "Count": len(kept),
            "Tenants": ",".join(entry.tenant_id for entry in kept), "Changes": _packed(kept)}


def pack(entity: Mapping) -> Pack:
    tenants = str(entity.get("Tenants") or "")
    return Pack(entity["RowKey"], str(entity.get("Run") or ""), entity["At"], int(entity.get("Count") or 0),
                frozenset(tenants.split(",")) if tenants else frozenset())


def is_pack(row_key: str) -> bool:
    return row_key.startswith(PREFIX)


def _packed(chunk: Sequence[Entry]) -> bytes:
    return zlib.compress(json.dumps([[e.tenant_id, e.kind, e.at.isoformat(), e.version,
                                      {name: [old, new] for name, (old, new) in e.changes.items()}]
                                     for e in chunk], ensure_ascii=False, separators=(",", ":")).encode(), 6)
