"""Full reconciliation: walk every customer and billing profile, in as many invocations as it takes.

The walk goes page by page; each page is stored while the next page's billing profiles are
fetched, then the walk *checkpoints* (next link, walk id, when the walk began, how many customers
it listed). A page's stored organizations are read for that page only (point reads), so what a
unit costs before its first page does not grow with the estate. Near the time budget it stops;
the next invocation resumes at the checkpoint. Only a complete walk ends anything (see
:mod:`shared.sync.endings`). A continuation token Partner Center no longer accepts restarts the
walk from page 1, and the run log says so.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from shared import telemetry
from shared.partner_center import BadRequestError, CustomerPage, NextLink
from shared.store import STATUS_EXCLUDED
from shared.store.tables import MAX_BATCH
from shared.store.runs import RunOutcome

from .endings import end_missing
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
        alive = [t for t in _page_ids(page) if t not in left_out]
        run.stores.walk.record_page(account, walk["walkId"], number, alive)
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
    # One page is stored while the next one's billing profiles are fetched; the walk's last page
    # in parts of a transaction as its profiles come in, so little is left to store after its
    # last call. Everything is stored strictly in order, one thing at a time, so a checkpoint
    # never runs ahead of the writes it covers.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-writer") as writer:
        storing = None

        def then(task, *args) -> None:
            """Store after what is queued, and not at all if that failed."""
            nonlocal storing
            before = storing

            def step() -> None:
                if before is not None:
                    before.result()
                task(*args)
            storing = writer.submit(step)

        def stored() -> None:
            if storing is not None:
                storing.result()  # raises the error of a write that failed

        page = first
        while page is not None:
            page_number += 1
            listed += len(page.customers) + len(page.malformed)
            wanted, left_out = [], set()
            # What this page needs to decide, read for this page only: a unit's start, and its
            # memory, stay the same whatever the size of the estate.
            known = {} if walk["fresh"] else run.stores.organizations.states(
                account, [c.tenant_id for c in page.customers if run.synced_kind(c)])
            for customer in page.customers:
                if not run.synced_kind(customer):
                    left_out.add(customer.tenant_id)  # not a kind that syncs: as good as not listed
                elif _status(known, customer.tenant_id) == STATUS_EXCLUDED:
                    run.result.counts.excluded_skipped += 1
                else:
                    wanted.append(customer)
            if sellers is not None:
                wanted = [replace(c, indirect_reseller_id=sellers.get(c.tenant_id, "")) for c in wanted]
            part_size = MAX_BATCH if page.next_link is None else None
            try:
                with telemetry.page_span(account, FULL, page_number):
                    for part, plan in enumerate(plan_in_parts(run, wanted, known, part_size)):
                        if part == 0:
                            stored()  # the previous page is stored (or its error raised) first
                        left_out |= plan.gone
                        then(commit, run, plan, failing)
            except BaseException:
                stored()  # a failed write is the run's error before what stopped the page
                raise
            record_malformed(run, page)
            then(close_page, page, page_number, listed, left_out)
            if page.next_link is None:
                break
            if run.near_deadline():
                stored()
                run.result.outcome = RunOutcome.CHECKPOINTED
                log.info("account %s: time budget nearly spent, walk %s checkpointed at page %d",
                         account, walk["walkId"], page_number)
                return
            page = next(pages, None)
        stored()
    seen = run.stores.walk.seen_set(account, walk["walkId"])
    started = datetime.fromisoformat(walk["startedAt"])
    run.check_lease()
    end_missing(run, walk_started=started, seen=seen, listed=listed)
    state.clear_checkpoint(account, etag)
    run.stores.walk.discard(account, walk["walkId"])
    state.set_reconciled_through(account, started)
    if state.get_watermark(account) is None:
        # A first reconciliation covers everything up to its own start.
        state.set_watermark(account, started)
    run.result.outcome = RunOutcome.SUCCEEDED


def _pages(run: Run, start: NextLink | None):
    return iter(run.client.iter_customer_pages(page_size=run.options.page_size, start=start))


def _status(snapshot: dict, tenant_id: str) -> str | None:
    known = snapshot.get(tenant_id)
    return known.status if known is not None else None


def _page_ids(page: CustomerPage) -> list[str]:
    return [c.tenant_id for c in page.customers] + [m.tenant_id for m in page.malformed if m.tenant_id]
