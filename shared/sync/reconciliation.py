"""Full reconciliation: walk every customer and billing profile, in as many invocations as it takes.

The walk goes page by page; each page is stored while the next page's billing profiles are
fetched, then the walk *checkpoints* (next link, walk id, when the walk began, how many customers
it listed). A page's stored organizations are read for that page only (point reads), so what a
unit costs before its first page does not grow with the estate. Near the time budget it stops;
the next invocation resumes at the checkpoint. Only a complete walk ends anything (see
:mod:`shared.sync.endings`). A continuation token Partner Center no longer accepts restarts the
walk from page 1, and the run log says so.

The walk's last page has no next page to hide its writes behind: it is stored in parts as its
billing profiles come in, and the walk's end reads the organizations it may end meanwhile, so
what is left after the walk's last call is a few writes (docs/performance.md, the budget's pace).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import replace
from datetime import datetime

from shared import telemetry
from shared.partner_center import BadRequestError, CustomerPage, NextLink
from shared.store import STATUS_ACTIVE, STATUS_EXCLUDED
from shared.store.tables import MAX_BATCH
from shared.store.runs import RunOutcome

from .endings import end_missing, read_candidates
from .run import FULL, Run
from .writes import commit, plan_in_parts, record_malformed

log = logging.getLogger(__name__)


def reconcile(run: Run) -> None:
    sync, state, account = run.sync, run.stores.state, run.account_id
    saved = state.get_checkpoint(account)
    checkpoint, etag = (saved.data, saved.etag) if saved else ({}, None)
    walk = {
        "walkId": checkpoint.get("walkId") or run.result.run_id,
        "startedAt": checkpoint.get("startedAt") or run.result.started_at.isoformat(),
        "page": checkpoint.get("page", 0),
        "listed": checkpoint.get("listed", 0),
        # A walk that began with no organization stored (a first run) reads none per page: one
        # another writer creates meanwhile makes this walk's create a conflict, decided again.
        "fresh": checkpoint.get("fresh", False) if checkpoint else not run.stores.organizations.holds_any(account),
    }
    start = NextLink.from_dict(checkpoint["next"]) if checkpoint.get("next") else None
    if checkpoint:
        log.info("account %s: resuming reconciliation walk %s at page %d", account, walk["walkId"], walk["page"] + 1)
    # Deployments from before the tenant index get it filled once (a point read ever after), so a
    # contact-edit check without an account finds every organization.
    run.stores.organizations.tenant_index.ensure_backfilled()
    failing = run.stores.failures.failing(account)
    sellers = sync.indirect_sellers() if sync.indirect_provider else None

    def close_page(page: CustomerPage, number: int, listed: int, left_out: set[str]) -> None:
        nonlocal etag
        run.stores.walk.record_page(account, walk["walkId"], number, _walked(page, left_out))
        position = {**walk, "page": number, "listed": listed,
                    "next": page.next_link.to_dict() if page.next_link else None}
        run.check_lease()
        etag = state.save_checkpoint(account, position, etag)
        if sync.after_page:
            sync.after_page(number)

    run.pages_begin()
    pages = _pages(run, start)
    try:
        first = next(pages, None)
    except BadRequestError as exc:
        if start is None:
            raise
        run.note(f"Partner Center refused the saved continuation token of walk {walk['walkId']} "
                 f"({exc.status} {exc.code or ''}); the walk restarted from page 1")
        run.stores.walk.discard(account, walk["walkId"])
        walk = {"walkId": run.result.run_id, "startedAt": run.now().isoformat(), "page": 0, "listed": 0,
                "fresh": not run.stores.organizations.holds_any(account)}
        pages = _pages(run, None)
        first = next(pages, None)
    page_number, listed = walk["page"], walk["listed"]
    started = datetime.fromisoformat(walk["startedAt"])
    no_end, ahead = threading.Event(), None

    def read_ahead(before: Future | None, last_page: set[str]):
        if before is not None:
            before.result()  # the pages before the last are recorded
        so_far = run.stores.walk.seen_set(account, walk["walkId"])
        return *read_candidates(run, walk_started=started, seen=so_far, leave_out=last_page, stop=no_end), so_far

    # One page is stored while the next one's billing profiles are fetched; the walk's last page
    # in parts as its profiles come in, so little is left to store after the walk's last call,
    # and the walk's end reads what it needs meanwhile.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-writer") as writer, \
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="walk-end") as reader:
        writes = _InOrder(writer)
        try:
            page = first
            while page is not None:
                page_number += 1
                listed += len(page.customers) + len(page.malformed)
                last = page.next_link is None
                known, wanted, left_out = _decide_first(run, page, walk["fresh"], sellers)
                if last:
                    ahead = reader.submit(read_ahead, writes.last, set(_page_ids(page)))
                try:
                    # Closed when the page stops midway: its fetches still to come are not made.
                    with telemetry.page_span(account, FULL, page_number), closing(plan_in_parts(
                            run, wanted, known, MAX_BATCH if last else None,
                            last_part=run.options.concurrency if last else 0)) as parts:
                        for part, plan in enumerate(parts):
                            if part == 0:
                                writes.wait()  # the previous page is stored (or its error raised) first
                            left_out |= plan.gone
                            writes.then(commit, run, plan, failing)
                except BaseException:
                    writes.wait()  # a failed write is the run's error before what stopped the page
                    raise
                record_malformed(run, page)
                writes.then(close_page, page, page_number, listed, left_out)
                if last:
                    break
                if run.near_deadline():
                    writes.wait()
                    run.result.outcome = RunOutcome.CHECKPOINTED
                    log.info("account %s: time budget nearly spent, walk %s checkpointed at page %d",
                             account, walk["walkId"], page_number)
                    return
                page = next(pages, None)
            writes.wait()
        except BaseException:
            no_end.set()  # the walk does not end in this run: the read ahead stops
            raise
    if ahead is None:  # the list was empty
        seen, candidates, active = run.stores.walk.seen_set(account, walk["walkId"]), None, None
    else:
        candidates, active, seen = ahead.result()
        seen.update(_walked(page, left_out))  # the last page, as close_page recorded it
        active += sum(1 for t in set(_page_ids(page)) if _status(known, t) == STATUS_ACTIVE)
    run.check_lease()
    end_missing(run, walk_started=started, seen=seen, listed=listed, candidates=candidates, active_count=active)
    state.clear_checkpoint(account, etag)
    run.stores.walk.discard(account, walk["walkId"])
    state.set_reconciled_through(account, started)
    if state.get_watermark(account) is None:
        # A first reconciliation covers everything up to its own start.
        state.set_watermark(account, started)
    run.result.outcome = RunOutcome.SUCCEEDED


class _InOrder:
    """Writes on one thread, strictly in order: a task queued after one that failed does not
    run, so a checkpoint never runs ahead of the writes it covers."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self.last: Future | None = None

    def then(self, task, *args) -> None:
        before = self.last

        def step() -> None:
            if before is not None:
                before.result()
            task(*args)
        self.last = self._pool.submit(step)

    def wait(self) -> None:
        """Return once everything queued is stored; raise the error of a write that failed."""
        if self.last is not None:
            self.last.result()


def _decide_first(run: Run, page: CustomerPage, fresh: bool, sellers: dict | None):
    """What a page's customers are before their profiles: ``(known, wanted, left out)``."""
    # Read for this page only: a unit's start, and its memory, stay the same whatever the estate.
    known = {} if fresh else run.stores.organizations.states(
        run.account_id, [c.tenant_id for c in page.customers if run.synced_kind(c)])
    wanted, left_out = [], set()
    for customer in page.customers:
        if not run.synced_kind(customer):
            left_out.add(customer.tenant_id)  # not a kind that syncs: as good as not listed
        elif _status(known, customer.tenant_id) == STATUS_EXCLUDED:
            run.result.counts.excluded_skipped += 1
        else:
            wanted.append(customer)
    if sellers is not None:
        wanted = [replace(c, indirect_reseller_id=sellers.get(c.tenant_id, "")) for c in wanted]
    return known, wanted, left_out


def _walked(page: CustomerPage, left_out: set[str]) -> list[str]:
    """The page's customers the walk has seen: all it listed but those left out (not a kind that
    syncs, or gone)."""
    return [t for t in _page_ids(page) if t not in left_out]


def _pages(run: Run, start: NextLink | None):
    return iter(run.client.iter_customer_pages(page_size=run.options.page_size, start=start))


def _status(snapshot: dict, tenant_id: str) -> str | None:
    known = snapshot.get(tenant_id)
    return known.status if known is not None else None


def _page_ids(page: CustomerPage) -> list[str]:
    return [c.tenant_id for c in page.customers] + [m.tenant_id for m in page.malformed if m.tenant_id]
