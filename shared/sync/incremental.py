"""Incremental sync: the activity log since the watermark, plus a walk of the list for new customers.

It works in every state of the account's reconciliation: before the first walk has finished (no
watermark yet: the log is read from when that walk began), during a walk, and after one. While a
walk is unfinished, customers listed past its position are the walk's to create: the incremental
run creates only those the activity log names, ones failing earlier, and new ones behind the walk. The
watermark moves only once everything up to the run's start is stored.
"""

from __future__ import annotations

from datetime import datetime

from shared import telemetry
from shared.store import STATUS_EXCLUDED, STATUS_RELATIONSHIP_ENDED
from shared.store.runs import RunOutcome

from .endings import end_missing
from .run import INCREMENTAL, Run
from .writes import commit, plan_customers, record_malformed

# Activity-log operations that mean "read this customer again" or "this relationship ended".
REFRESH_OPERATIONS = {
    "add_customer",
    "update_customer_billing_profile",
    "update_customer_partner_contract_company_name",
    "update_company_info",
}
ENDED_OPERATIONS = {"remove_partner_customer_relationship", "delete_customer", "delete_tip_customer"}


def incremental(run: Run) -> None:
    state, account, options = run.stores.state, run.account_id, run.options
    started = run.result.started_at
    watermark = state.get_watermark(account)
    if watermark is None:
        # The first reconciliation is still walking: everything since it began is news.
        checkpoint = state.get_checkpoint(account)
        watermark = datetime.fromisoformat(checkpoint.data["startedAt"]) if checkpoint else started
    window_start = watermark - options.audit_overlap
    already_applied = state.applied_records(account)
    # A change dated before the last complete walk started was read by that walk.
    reconciled = state.get_reconciled_through(account) or window_start
    applied = {rid: at for rid, at in already_applied.items() if at >= started - options.audit_overlap}
    refresh, ended = set(), set()
    for record in run.client.iter_audit_records(window_start, started):
        if record.operation_status not in ("", "succeeded"):
            continue
        if (record.id and record.id in already_applied) or record.operation_date < reconciled:
            continue  # the overlap window read it again; it was acted on already
        if record.id:
            applied[record.id] = record.operation_date
        tenant = record.customer_id.lower()
        if record.operation_type in REFRESH_OPERATIONS:
            refresh.add(tenant)
        elif record.operation_type in ENDED_OPERATIONS:
            ended.add(tenant)
    # Status alone says who needs syncing; the few written are read in full (plan_content_write).
    snapshot = run.stores.organizations.statuses(account)
    failing = run.stores.failures.failing(account)
    retry = {tenant for tenant, failure in failing.items() if not failure.quarantined}
    seen: set[str] = set()
    listed = 0
    frontier = _walk_frontier(run)
    run.pages_begin()
    for page in run.client.iter_customer_pages(page_size=options.page_size):
        with telemetry.page_span(account, INCREMENTAL, page.number):
            outcome = _sync_page(run, page, snapshot, failing, refresh, retry, seen, frontier)
        listed += len(page.customers) + len(page.malformed)
        if outcome is not None:
            return
    end_missing(run, walk_started=started, seen=seen, listed=listed, confirmed=ended, statuses=snapshot)
    # Only now is everything up to the run's start stored: the watermark may move.
    next_window = started - options.audit_overlap
    run.check_lease()
    state.set_watermark(account, started, {r: at for r, at in applied.items() if at >= next_window})
    run.result.outcome = RunOutcome.SUCCEEDED


def _sync_page(run: Run, page, snapshot: dict, failing: dict, refresh: set[str], retry: set[str],
               seen: set[str], frontier: "_WalkFrontier | None" = None) -> RunOutcome | None:
    """Sync the customers of one page that need it; :attr:`RunOutcome.PARTIAL` when the time is up."""
    wanted = []
    for customer in page.customers:
        beyond_walk = frontier is not None and frontier.beyond(customer.tenant_id)
        if not run.synced_kind(customer):
            continue  # not a kind that syncs: as good as not listed
        seen.add(customer.tenant_id)
        status = _status(snapshot, customer.tenant_id)
        if status == STATUS_EXCLUDED:
            continue
        if status is None and beyond_walk and customer.tenant_id not in refresh and customer.tenant_id not in retry:
            continue  # the unfinished walk has not reached it yet: creating it is the walk's job
        if (status is None or status == STATUS_RELATIONSHIP_ENDED or customer.tenant_id in refresh
                or customer.tenant_id in retry):
            wanted.append(customer)
    seen.update(m.tenant_id for m in page.malformed if m.tenant_id)
    if run.sync.indirect_provider:
        wanted = [run.sync.with_indirect_seller(c, snapshot.get(c.tenant_id)) for c in wanted]
    plan = plan_customers(run, wanted, snapshot)
    seen.difference_update(plan.gone)
    commit(run, plan, failing)
    record_malformed(run, page)
    if page.next_link is not None and run.near_deadline():
        run.result.outcome = RunOutcome.PARTIAL
        run.result.error = "time budget spent before the customer list was walked; watermark kept"
        return RunOutcome.PARTIAL
    return None


class _WalkFrontier:
    """Where an unfinished reconciliation walk stands in the customer list, read item by item in
    list order. The walk's continuation token resumes after the last customer it served (by the
    list's sort key), so customers listed after that one are still ahead of it, however many were
    inserted before; without a recorded customer, its count of listed customers marks the place."""

    def __init__(self, last_seen: str, listed: int) -> None:
        self._last_seen = last_seen
        self._listed = listed
        self._position = 0
        self._passed_last = False

    def beyond(self, tenant_id: str) -> bool:
        """Whether this list item (the next one, in order) is past the walk's position."""
        self._position += 1
        if self._last_seen:
            beyond = self._passed_last
            self._passed_last = self._passed_last or tenant_id == self._last_seen
            return beyond
        return self._position > self._listed


def _walk_frontier(run: Run) -> _WalkFrontier | None:
    """The frontier of the account's unfinished walk, or None when no walk is under way."""
    checkpoint = run.stores.state.get_checkpoint(run.account_id)
    if checkpoint is None or not checkpoint.data.get("walkId"):
        return None
    data = checkpoint.data
    return _WalkFrontier(run.stores.walk.last_seen(run.account_id, data["walkId"]), int(data.get("listed", 0)))


def _status(snapshot: dict, tenant_id: str) -> str | None:
    known = snapshot.get(tenant_id)
    return known.status if known is not None else None
