"""Retention: the sync's history and change log pruned after their retention (docs/storage.md#retention).

The nightly reconciliation's invocation prunes with the time it has left, and ``python -m shared
prune`` does the same by hand. Each table is pruned in steps of at most 100 rows of one partition
(one transaction); before each step the invocation's :class:`Deadline` is asked, and with little
time left the prune stops where it is: the next night's finds the rest with the same queries.

What is never deleted: ``Organizations`` and the tables that are state rather than history
(``SyncState``, ``RequestBudget``, ``OrganizationTenants``); pending and failed webhook events;
held endings awaiting a decision (pending, approving); runs still running, and the newest run and
newest completed run of each mode of an account (status shows them); the walk a checkpoint names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable

from shared.keys import utc_now
from shared.store import TableNames
from shared.sync.engine import Deadline
from shared.sync.stores import SyncStores
from shared.webhooks.store import TABLE_NAME as EVENTS_TABLE, WebhookEventStore

log = logging.getLogger(__name__)

# The tables pruned, in the order they are pruned, by their canonical names (the report's keys).
_NAMES = TableNames()
RUNS, CHANGES, FAILURES, HELD, WALK = _NAMES.runs, _NAMES.changes, _NAMES.failures, _NAMES.held, _NAMES.walk
PRUNED_TABLES = (RUNS, EVENTS_TABLE, FAILURES, HELD, WALK, CHANGES)
# A prune stops when the invocation has less than this left: a transaction or a page read takes a fraction of it.
STOP_WITH_SECONDS_LEFT = 5.0


@dataclass
class PruneReport:
    """What a prune deleted, per account and table, and whether it got through everything."""

    accounts: dict[str, dict[str, int]] = field(default_factory=dict)
    finished: bool = True

    def totals(self) -> dict[str, int]:
        return {table: sum(counts.get(table, 0) for counts in self.accounts.values()) for table in PRUNED_TABLES}

    def as_dict(self) -> dict:
        return {"deleted": self.totals(), "accounts": self.accounts, "finished": self.finished}


def prune_history(*, stores: SyncStores, events: WebhookEventStore, account_ids: Iterable[str],
                  history_days: int, change_log_days: int, deadline: Deadline,
                  now: datetime | None = None) -> PruneReport:
    """Delete each account's history older than ``history_days`` and change log entries older than
    ``change_log_days``, until done or until ``deadline`` is close; see the module's docstring."""
    now = now or utc_now()
    history = now - timedelta(days=history_days)
    change_log = now - timedelta(days=change_log_days)

    def may_continue() -> bool:
        return deadline.left() > STOP_WITH_SECONDS_LEFT

    report = PruneReport()
    for account in account_ids:
        steps: dict[str, Callable[[], tuple[int, bool]]] = {
            RUNS: lambda: stores.runs.prune(account, history, may_continue),
            EVENTS_TABLE: lambda: events.prune(account, history, may_continue),
            FAILURES: lambda: stores.failures.prune(account, history, may_continue),
            HELD: lambda: stores.held.prune(account, history, may_continue),
            WALK: lambda: stores.walk.prune(account, history, may_continue,
                                            in_progress=_walk_in_progress(stores, account)),
            CHANGES: lambda: stores.changes.prune(account, change_log, may_continue),
        }
        counts = report.accounts[account] = dict.fromkeys(PRUNED_TABLES, 0)
        for table in PRUNED_TABLES:
            if not may_continue():
                report.finished = False
                break
            counts[table], finished = steps[table]()
            if not finished:
                report.finished = False
                break
        log.info("account %s: pruned %s", account, counts)
        if not report.finished:
            log.info("the prune stopped at the invocation's deadline; the next one continues")
            break
    return report


def _walk_in_progress(stores: SyncStores, account_id: str) -> str | None:
    checkpoint = stores.state.get_checkpoint(account_id)
    return checkpoint.data.get("walkId") if checkpoint is not None else None
