"""Settled customers (rows in SyncState): what the last incremental run found needing no work.

An incremental run lists every page of the customer list (Partner Center forces that) and must
tell, for each customer, whether it is new, ended or excluded. Reading the whole Organizations
partition for that grows with the estate, so each run records the customers it found *settled*
(stored ``active`` or ``excluded``) and the next run reads only the others. Rows, PartitionKey =
account id:

- ``listed-a|{page}`` / ``listed-b|{page}``: the settled tenant ids of one list page (packed, as
  the walk's rows are), two generations: a run writes the one not in use, page by page, and only
  its end makes it current, so a run that dies midway leaves the previous generation intact;
- ``listed``: the current generation, its page count and ``VerifiedAt`` (when the run that wrote
  it began: everything it holds was settled at or after that moment);
- ``endings``: the tenant ids about to be ended by any writer and when (kept ``ENDING_MEMORY``),
  or ``DistrustUntil`` when too many to list: the one way a settled customer stops being
  settled is an ending (an exclusion or an inclusion leaves it settled; rows are never deleted).

A reader trusts a generation verified within ``TRUST_HORIZON`` and not before ``DistrustUntil``,
and reads the organizations of the recent endings again. Every ending lands within an
invocation's functionTimeout of its note, so one noted after a generation was verified is still
listed when that generation is read.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Callable, Iterator, Sequence

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.keys import SEPARATOR, account_key, require_utc, tenant_key, utc_now
from shared.store.id_lists import pack_ids, unpack_ids
from shared.store.tables import Tables, replace_if_unchanged
from shared.store.tenant_set import TenantSet

_HEADER, _ENDINGS = "listed", "endings"
_GENERATIONS = ("listed-a", "listed-b")
_PAGE_DIGITS = 6
ENDING_MEMORY = timedelta(hours=2)
TRUST_HORIZON = timedelta(hours=1)
# Past this many endings in ENDING_MEMORY the ids are not listed: every generation verified
# before the last of them has landed (a functionTimeout and clock skew after) is distrusted.
_MAX_ENDINGS = 350  # each entry takes about 76 of the property's 32K characters
_ENDINGS_LAND_WITHIN = timedelta(minutes=15)
_ATTEMPTS = 8
# A row holds up to 18 KB of ids: small responses keep a large estate's peak memory flat.
_ROWS_PER_RESPONSE = 16


class Settled:
    """The settled customers of an account's customer list, as the last incremental run found them."""

    def __init__(self, tables: Tables, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = tables.sync_state
        self._clock = clock

    def load(self, account_id: str) -> tuple[TenantSet | None, set[str], str]:
        """``(settled ids or None when not to be trusted, tenant ids ended lately, generation to write)``."""
        account = account_key(account_id)
        header = self._read(account, _HEADER)
        endings = self._read(account, _ENDINGS)
        current = str(header["Generation"]) if header else ""
        following = _GENERATIONS[1] if current == _GENERATIONS[0] else _GENERATIONS[0]
        recent = set(_entries(endings))
        if header is None or current not in _GENERATIONS:
            return None, recent, following
        verified = require_utc(header["VerifiedAt"], "settled list verification")
        distrust = endings.get("DistrustUntil") if endings else None
        if verified < self._clock() - TRUST_HORIZON or (distrust is not None and verified < distrust):
            return None, recent, following
        settled = TenantSet()
        for entity in self._rows(account, current, int(header.get("Pages", 0))):
            settled.update(unpack_ids(entity))
        return settled.freeze(), recent, following

    def previous_ids(self, account_id: str) -> Iterator[str]:
        """The tenant ids of the current generation, streamed (page by page)."""
        account = account_key(account_id)
        header = self._read(account, _HEADER)
        if header is None or str(header["Generation"]) not in _GENERATIONS:
            return
        for entity in self._rows(account, str(header["Generation"]), int(header.get("Pages", 0))):
            yield from unpack_ids(entity)

    def record_page(self, account_id: str, generation: str, page_no: int, tenant_ids: Sequence[str]) -> None:
        """The settled tenant ids of one page, in the generation being written."""
        entity = {"PartitionKey": account_key(account_id), "RowKey": _page_key(generation, page_no)}
        self._table.upsert_entity({**entity, **pack_ids([tenant_key(t) for t in tenant_ids])},
                                  mode=UpdateMode.REPLACE)

    def complete(self, account_id: str, generation: str, pages: int, verified_at: datetime) -> None:
        """Make ``generation`` (``pages`` pages, verified since ``verified_at``) the current one."""
        self._table.upsert_entity({"PartitionKey": account_key(account_id), "RowKey": _HEADER,
                                   "Generation": generation, "Pages": pages,
                                   "VerifiedAt": require_utc(verified_at, "settled list verification")},
                                  mode=UpdateMode.REPLACE)

    def note_endings(self, account_id: str, tenant_ids: Sequence[str]) -> None:
        """Call before ending these organizations: readers then look at them again."""
        if not tenant_ids:
            return
        account, now = account_key(account_id), self._clock()
        for _ in range(_ATTEMPTS):
            current = self._read(account, _ENDINGS)
            kept = [(t, at) for t, at in _entries(current).items() if at >= now - ENDING_MEMORY]
            entries = dict(kept) | {tenant_key(t): now for t in tenant_ids}
            entity = {"PartitionKey": account, "RowKey": _ENDINGS}
            distrust = current.get("DistrustUntil") if current else None
            if len(entries) > _MAX_ENDINGS:
                distrust, entries = max(distrust or now, now + _ENDINGS_LAND_WITHIN), {}
            entity["Entries"] = json.dumps([[t, at.isoformat()] for t, at in entries.items()], separators=(",", ":"))
            if distrust is not None:
                entity["DistrustUntil"] = distrust
            if replace_if_unchanged(self._table, entity, current):
                return
            # another writer noted endings meanwhile: read again
        raise RuntimeError(f"account {account_id}: the endings note kept changing under other writers")

    def _rows(self, account: str, generation: str, pages: int):
        return self._table.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey le @high",
            parameters={"pk": account, "low": generation + SEPARATOR, "high": _page_key(generation, pages)},
            results_per_page=_ROWS_PER_RESPONSE)

    def _read(self, account: str, row: str):
        try:
            return self._table.get_entity(account, row)
        except ResourceNotFoundError:
            return None


def _page_key(generation: str, page_no: int) -> str:
    return f"{generation}{SEPARATOR}{page_no:0{_PAGE_DIGITS}d}"


def _entries(entity) -> dict[str, datetime]:
    if not entity or not entity.get("Entries"):
        return {}
    return {tenant: datetime.fromisoformat(at) for tenant, at in json.loads(entity["Entries"])}
