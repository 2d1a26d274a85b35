"""Settling a run's change log: entries whose organization write never landed are taken back.

The write path logs a change just before storing it (:mod:`shared.sync.writes`), so a process that
dies between the two leaves an entry for a change that is not stored. Whoever closes that run
(the next run of its account, see :func:`shared.sync.run.close_abandoned_runs`) or the run itself,
when a write failed midway, settles it here.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from shared.sync.stores import SyncStores

log = logging.getLogger(__name__)

# Up to this many entries are checked with point reads; more with one query of recent changes.
_POINT_READS = 100


def settle_change_log(stores: "SyncStores", account_id: str, run_id: str, *, since: datetime,
                      tenant_ids: Iterable[str] | None = None) -> int:
    """Take back the entries of ``run_id`` whose organization write never landed; returns how many.

    An entry landed when its organization's ``LastChangedAt`` is its timestamp, or later (written
    again since, by this change's successor). A missing row, or an older ``LastChangedAt``, means
    the process stopped or failed between the entry and its write. ``tenant_ids`` limits the check
    to those entries; otherwise the whole run's are checked (a run closed as abandoned).
    """
    logged = stores.changes.logged_at(account_id, run_id)
    if tenant_ids is not None:
        wanted = set(tenant_ids)
        logged = {tenant: at for tenant, at in logged.items() if tenant in wanted}
    if not logged:
        return 0
    few = len(logged) <= _POINT_READS
    stored = stores.organizations.changed_at(account_id, list(logged) if few else None,
                                             since=None if few else since)
    unstored = [tenant for tenant, at in logged.items()
                if (stored_at := stored.get(tenant)) is None or stored_at < at]
    stores.changes.forget(account_id, run_id, unstored)
    if unstored:
        log.warning("account %s: run %s stopped before storing %d change(s) it had logged; their change-log "
                    "entries were taken back", account_id, run_id, len(unstored))
    return len(unstored)


def settle_change_log_or_say_why(stores: "SyncStores", account_id: str, run_id: str, *, since: datetime,
                                 tenant_ids: Iterable[str]) -> str | None:
    """:func:`settle_change_log` after a failed write, when storage may be failing too: ``None``
    when settled, else why not (the entries stay; the caller says so in the run's log)."""
    try:
        settle_change_log(stores, account_id, run_id, since=since, tenant_ids=tenant_ids)
    except Exception as exc:
        log.warning("account %s: change log of run %s not settled", account_id, run_id, exc_info=True)
        return f"{type(exc).__name__}: {exc}"
    return None
