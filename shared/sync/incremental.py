"""Incremental sync: the activity log since the watermark, plus a walk of the list for new customers.

It works in every state of the account's reconciliation: before the first walk has finished (no
watermark yet: the log is read from when that walk began), during a walk, and after one. While a
walk is unfinished, customers listed past its position are the walk's to create: the incremental
run creates only those the activity log names, ones failing earlier, and new ones behind the walk. The
watermark moves only once everything up to the run's start is stored.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from shared import telemetry
from shared.store import STATUS_ACTIVE, STATUS_EXCLUDED, STATUS_RELATIONSHIP_ENDED
from shared.store.runs import RunOutcome
from shared.store.tenant_set import TenantSet, common

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
    failing = run.stores.failures.failing(account)
    retry = {tenant for tenant, failure in failing.items() if not failure.quarantined}
    # What the last run found settled is not read again; only the rest of each page is.
    settled, lately_ended, generation = run.stores.settled.load(account)
    trusted = settled is not None
    active = TenantSet()
    if settled is None:
        # Nothing recent to go on (a first run, a long pause, many endings): one streamed read of
        # the statuses, keeping 8 bytes a settled customer; the next run reads none of them.
        settled = TenantSet()
        for tenant, known in run.stores.organizations.each_state(account):
            if known.status in (STATUS_ACTIVE, STATUS_EXCLUDED):
                settled.add(tenant)
            if known.status == STATUS_ACTIVE:
                active.add(tenant)
        settled.freeze()
    page = _Page(run, settled, lately_ended, failing, refresh, retry)
    listed = pages = 0
    frontier = _walk_frontier(run)
    run.pages_begin()
    # A page's settled row is written while the next page is listed (one at a time: memory stays flat).
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="settled-writer") as writer:
        recording = None
        for listing in run.client.iter_customer_pages(page_size=options.page_size):
            with telemetry.page_span(account, INCREMENTAL, listing.number):
                outcome, settled_here = page.sync(listing, frontier)
            pages += 1
            if recording is not None:
                recording.result()
            recording = writer.submit(run.stores.settled.record_page, account, generation, pages, settled_here)
            listed += len(listing.customers) + len(listing.malformed)
            if outcome is not None:
                return
        if recording is not None:
            recording.result()
    seen = _Listed(page)
    if not trusted:
        # The statuses are read again for the endings only when someone active was not listed.
        if page.gone or common(active, page.seen) < len(active):
            end_missing(run, walk_started=started, seen=seen, listed=listed, confirmed=ended)
    else:
        # Who left is among those the last run listed (or the activity log names): only when
        # some of them were not listed now are they read (their rows, one point read each).
        missing: list[str] = [t for t in ended | page.gone if t not in seen]
        if common(settled, page.seen) < len(settled):
            missing += [t for t in run.stores.settled.previous_ids(account) if t not in seen]
        candidates = run.stores.organizations.states(account, missing, with_content=False)
        end_missing(run, walk_started=started, seen=seen, listed=listed, confirmed=ended,
                    candidates=candidates.items(), active_count=len(settled))
    # Only now is everything up to the run's start stored: the watermark may move.
    next_window = started - options.audit_overlap
    run.check_lease()
    run.stores.settled.complete(account, generation, pages, verified_at=started)
    state.set_watermark(account, started, {r: at for r, at in applied.items() if at >= next_window})
    run.result.outcome = RunOutcome.SUCCEEDED


class _Listed:
    """Membership in what this run listed, less the customers Partner Center said were gone."""

    def __init__(self, page: "_Page") -> None:
        page.seen.freeze()
        self._page = page

    def __contains__(self, tenant_id: object) -> bool:
        return self._page.listed(str(tenant_id))


class _Page:
    """Decides and syncs one page of the list at a time, reading only what it cannot tell from the
    settled list: customers not on it, ended lately, named by the activity log, or failing."""

    def __init__(self, run: Run, settled: TenantSet, lately_ended: set[str], failing: dict,
                 refresh: set[str], retry: set[str]) -> None:
        self.run, self.settled, self.lately_ended = run, settled, lately_ended
        self.failing, self.refresh, self.retry = failing, refresh, retry
        self.seen = TenantSet()
        # Listed, but Partner Center says the relationship is gone: not seen, for the endings.
        self.gone: set[str] = set()

    def listed(self, tenant_id: str) -> bool:
        return tenant_id in self.seen and tenant_id not in self.gone

    def _known_settled(self, tenant: str) -> bool:
        return (tenant in self.settled and tenant not in self.lately_ended
                and tenant not in self.refresh and tenant not in self.retry)

    def sync(self, page, frontier: "_WalkFrontier | None") -> tuple[RunOutcome | None, list[str]]:
        """Sync the customers of one page that need it; returns :attr:`RunOutcome.PARTIAL` when
        the time is up, and the page's customers now settled."""
        run = self.run
        synced = []
        for customer in page.customers:
            beyond_walk = frontier is not None and frontier.beyond(customer.tenant_id)
            if run.synced_kind(customer):  # other kinds are as good as not listed
                synced.append((customer, beyond_walk))
                self.seen.add(customer.tenant_id)
        settled = [c.tenant_id for c, _ in synced if self._known_settled(c.tenant_id)]
        known = run.stores.organizations.states(
            run.account_id, [c.tenant_id for c, _ in synced if not self._known_settled(c.tenant_id)],
            with_content=False)
        wanted = []
        for customer, beyond_walk in synced:
            tenant = customer.tenant_id
            if self._known_settled(tenant):
                continue
            status = _status(known, tenant)
            if status == STATUS_EXCLUDED:
                settled.append(tenant)
                continue
            if status is None and beyond_walk and tenant not in self.refresh and tenant not in self.retry:
                continue  # the unfinished walk has not reached it yet: creating it is the walk's job
            if status in (None, STATUS_RELATIONSHIP_ENDED) or tenant in self.refresh or tenant in self.retry:
                wanted.append(customer)
            else:
                settled.append(tenant)  # active, and nothing says it changed
        self.seen.update(m.tenant_id for m in page.malformed if m.tenant_id)
        if run.sync.indirect_provider:
            wanted = [run.sync.with_indirect_seller(c, known.get(c.tenant_id)) for c in wanted]
        plan = plan_customers(run, wanted, known)
        commit(run, plan, self.failing)
        self.gone.update(plan.gone)
        record_malformed(run, page)
        settled += [c.tenant_id for c in plan.customers if c.tenant_id not in plan.failed
                    and c.tenant_id not in plan.gone]
        if page.next_link is not None and run.near_deadline():
            run.result.outcome = RunOutcome.PARTIAL
            run.result.error = "time budget spent before the customer list was walked; watermark kept"
            return RunOutcome.PARTIAL, settled
        return None, settled


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
    last = run.stores.walk.last_seen(run.account_id, data["walkId"], int(data.get("page", 0)))
    return _WalkFrontier(last, int(data.get("listed", 0)))


def _status(snapshot: dict, tenant_id: str) -> str | None:
    known = snapshot.get(tenant_id)
    return known.status if known is not None else None
