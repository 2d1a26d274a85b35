"""The write path: billing profiles fetched for a page of customers, organizations mapped and
compared, changes stored, failures settled.

Two rules hold everywhere here:

- Only an answer about one customer (403, 404, 400, a profile that cannot be stored) is that
  customer's failure. Anything else (5xx, 429, timeouts, tokens, the time budget) is about the
  run: :class:`RunInterrupted` stops the page, which is not checkpointed, and nothing after the
  error is written (a page stored in parts may have stored the whole parts before it).
- A change-log entry is written just before its organization, with the row's ``LastChangedAt``
  as its timestamp, so no stored change lacks its entry even when the process dies between the two
  writes. An entry whose organization write did not land is taken back (:mod:`shared.sync.change_log`):
  at once when the write lost a race, at the run's end when it failed, by the next run when the
  process died. A write that loses a race with another writer (ETag) is re-read and decided again
  for that organization alone; the rest of the page is stored as planned.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Iterator

from shared.contacts.mapping import (
    CustomerRecord,
    changed_fields,
    check_table_limits,
    content_hash,
    organization_fields,
    primary_contact_from_billing_profile,
)
from shared.partner_center import (
    BadRequestError,
    Customer,
    CustomerNotFoundError,
    DeadlineExceeded,
    ForbiddenError,
    MalformedResponseError,
    PartnerCenterError,
    RelationshipEndedError,
)
from shared.store import (
    CREATE,
    END,
    STATUS_ACTIVE,
    STATUS_EXCLUDED,
    STATUS_RELATIONSHIP_ENDED,
    UPDATE,
    ChangeEntry,
    OrganizationState,
    OrganizationWrite,
    next_version,
    organization_state,
    skipped_over_exclusion,
)

from .run import Run, describe

log = logging.getLogger(__name__)

# Answers about one customer: counted against it (and quarantine), never against the run.
CUSTOMER_ERRORS = (ForbiddenError, CustomerNotFoundError, BadRequestError, MalformedResponseError)
# How often one organization is re-read and decided again when other writers keep winning.
_CONFLICT_ROUNDS = 4


class RunInterrupted(Exception):
    """Partner Center failed in a way that is not about one customer: stop, keep the checkpoint."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(describe(cause))
        self.cause = cause


@dataclass
class PlannedWrite:
    """One organization write and the change-log entry that goes with it.

    ``fields`` is the content to store (creates and updates); an ending carries ``fresh_after``:
    it is dropped if the row turns out to have been written since then (fresh evidence of life).
    """

    tenant_id: str
    kind: str
    at: datetime
    fields: dict[str, str] | None
    diff: dict[str, tuple[str, str]]
    previous: OrganizationState | None = None
    fresh_after: datetime | None = None
    by: str = ""  # the operator whose decision this write carries out (an approved held ending)

    def write(self) -> OrganizationWrite:
        return OrganizationWrite(self.tenant_id, self.kind, self.at,
                                 self.fields if self.kind != END else {}, previous=self.previous)

    def change(self) -> ChangeEntry:
        return ChangeEntry(self.tenant_id, self.kind, self.at, self.diff, by=self.by,
                           version=next_version(self.previous))


@dataclass
class PagePlan:
    """What one page of customers needs written."""

    customers: list[Customer]
    writes: list[PlannedWrite] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    # Listed, but Partner Center says the relationship is gone (403 code 20002): candidates to end.
    gone: set[str] = field(default_factory=set)


def plan_customers(run: Run, customers: list[Customer], snapshot: dict) -> PagePlan:
    """Fetch and map the given customers; decide what to write (nothing for unchanged ones)."""
    return next(plan_in_parts(run, customers, snapshot))


def plan_in_parts(run: Run, customers: list[Customer], snapshot: dict, writes_per_part: int | None = None,
                  last_part: int = 0) -> Iterator[PagePlan]:
    """:func:`plan_customers` as the billing profiles come in, in the customers' order: a part as
    soon as it holds ``writes_per_part`` writes, and the last ``last_part`` customers a part of
    their own (one part in all when ``None``). Stored as they come, a page's writes go on while
    its last profiles are fetched, and little is left after them. A run-level error raises where
    it stops the fetches: the parts before it are whole and may be stored."""
    # A page that lists a customer twice must not write it twice in one transaction.
    customers = list({c.tenant_id: c for c in customers}.values())
    plan, now, parts = PagePlan([]), None, 0
    for done, (customer, outcome) in enumerate(_profiles(run, customers), start=1):
        now = now or run.now()
        plan.customers.append(customer)
        _plan_one(run, plan, customer, outcome, snapshot, now)
        if writes_per_part and (len(plan.writes) >= writes_per_part or len(customers) - done == last_part):
            run.result.counts.failed += len(plan.failed)
            yield plan
            plan, now, parts = PagePlan([]), None, parts + 1
    if plan.customers or not parts:
        run.result.counts.failed += len(plan.failed)
        yield plan


def _plan_one(run: Run, plan: PagePlan, customer: Customer, outcome: object, snapshot: dict,
              now: datetime) -> None:
    if isinstance(outcome, RelationshipEndedError):
        plan.gone.add(customer.tenant_id)
        return
    if isinstance(outcome, Exception):
        plan.failed[customer.tenant_id] = describe(outcome)
        return
    try:
        fields = organization_content(customer, outcome)
    except ValueError as exc:
        plan.failed[customer.tenant_id] = f"billing profile rejected: {exc}"
        return
    planned = plan_content_write(run, customer.tenant_id, fields, snapshot, now)
    if planned is not None:
        plan.writes.append(planned)


def commit(run: Run, plan: PagePlan, failing: dict) -> None:
    """Store a page's plan: organizations with their change log, then the failure ledger."""
    store(run, plan.writes)
    settle_failures(run, plan.customers, plan.failed, failing, gone=plan.gone)


def plan_content_write(run: Run, tenant_id: str, fields: dict[str, str], snapshot: dict,
                       now: datetime) -> PlannedWrite | None:
    """The write that makes the stored organization hold ``fields``, or ``None`` when it does."""
    known = snapshot.get(tenant_id)
    stored = None
    if known is not None and not known.content_hash:
        # A status snapshot: the row itself says whether the content changed (and its old values).
        stored = run.stores.organizations.get(run.account_id, tenant_id)
        known = organization_state(stored) if stored is not None else None
    digest = content_hash(fields)
    snapshot[tenant_id] = OrganizationState(STATUS_ACTIVE, digest, "", fields["IndirectResellerId"], now)
    if known is None:
        return PlannedWrite(tenant_id, CREATE, now, fields, changed_fields({}, fields))
    reactivated = known.status == STATUS_RELATIONSHIP_ENDED
    if known.content_hash == digest and not reactivated:
        snapshot[tenant_id] = known
        run.result.counts.unchanged += 1
        return None
    # Only a changed organization costs a point read: the change log needs its old values.
    if stored is None:
        stored = run.stores.organizations.get(run.account_id, tenant_id)
    diff = changed_fields(stored or {}, fields)
    if reactivated:
        diff["Status"] = (STATUS_RELATIONSHIP_ENDED, STATUS_ACTIVE)
    return PlannedWrite(tenant_id, UPDATE, now, fields, diff, previous=known)


def plan_ending(tenant_id: str, state: OrganizationState | None, now: datetime,
                fresh_after: datetime | None = None, by: str = "") -> PlannedWrite:
    return PlannedWrite(tenant_id, END, now, None, {"Status": (STATUS_ACTIVE, STATUS_RELATIONSHIP_ENDED)},
                        previous=state, fresh_after=fresh_after, by=by)


def store(run: Run, planned: list[PlannedWrite]) -> None:
    """Write change-log entries, then their organizations; re-decide the ones another writer changed."""
    counts = run.result.counts
    account, run_id = run.account_id, run.result.run_id
    for _ in range(_CONFLICT_ROUNDS):
        planned = [p for p in planned if not _excluded_before(p, counts)]
        if not planned:
            return
        run.check_lease()
        # An ending makes a settled customer unsettled: the next incremental run must look again.
        run.stores.settled.note_endings(account, [p.tenant_id for p in planned if p.kind == END])
        run.stores.changes.record(account, run_id, [p.change() for p in planned])
        try:
            stats = run.stores.organizations.apply(account, [p.write() for p in planned])
        except Exception:
            # Earlier transactions may have landed: the run's end sorts out which entries stand.
            run.unsettled.update(p.tenant_id for p in planned)
            raise
        run.result.transactions += stats.transactions
        run.result.entities_written += stats.entities
        lost = set(stats.conflicts)
        run.stores.changes.stored(account, run_id, [p.tenant_id for p in planned if p.tenant_id not in lost])
        for p in planned:
            if p.tenant_id in lost:
                continue
            if p.kind == CREATE:
                counts.created += 1
            elif p.kind == UPDATE:
                counts.updated += 1
            else:
                counts.ended += 1
        again = [a for p in planned if p.tenant_id in lost if (a := _decide_again(run, p)) is not None]
        # A lost write decided again re-records its entry (same row); one not to be written loses it.
        run.stores.changes.forget(account, run_id, sorted(lost - {a.tenant_id for a in again}))
        planned = again
    if planned:
        run.stores.changes.forget(account, run_id, [p.tenant_id for p in planned])
        raise RuntimeError(f"account {account}: organizations {', '.join(p.tenant_id for p in planned)} "
                           f"kept changing under concurrent writers; the next run writes them")


def _excluded_before(planned: PlannedWrite, counts) -> bool:
    """Known excluded when planned: the store would skip it, so it gets no entry either."""
    if skipped_over_exclusion(planned.write()):
        counts.excluded_skipped += 1
        return True
    return False


def _decide_again(run: Run, planned: PlannedWrite) -> PlannedWrite | None:
    """Another writer changed this organization first: read it and decide once more."""
    stored = run.stores.organizations.get(run.account_id, planned.tenant_id)
    counts = run.result.counts
    # A new timestamp, later than the other writer's: the entry then tells which write landed last.
    at = run.now()
    if stored is None:
        return replace(planned, at=at) if planned.kind == CREATE else None
    state = organization_state(stored)
    if state.status == STATUS_EXCLUDED:
        counts.excluded_skipped += 1
        return None
    if planned.kind == END:
        if state.status != STATUS_ACTIVE or (
                planned.fresh_after is not None and (state.changed_at is None or state.changed_at >= planned.fresh_after)):
            return None  # ended meanwhile, or written after the walk began: never this walk's to end
        return PlannedWrite(planned.tenant_id, END, at, None, planned.diff, previous=state,
                            fresh_after=planned.fresh_after, by=planned.by)
    if state.status == STATUS_ACTIVE and state.content_hash == content_hash(planned.fields):
        counts.unchanged += 1
        return None  # the other writer stored what this run would have
    diff = changed_fields(stored, planned.fields)
    if state.status == STATUS_RELATIONSHIP_ENDED:
        diff["Status"] = (STATUS_RELATIONSHIP_ENDED, STATUS_ACTIVE)
    return PlannedWrite(planned.tenant_id, UPDATE, at, planned.fields, diff, previous=state)


def settle_failures(run: Run, customers: list[Customer], failed: dict[str, str], failing: dict,
                    gone: set[str] = frozenset()) -> None:
    """Count this page's customer failures; forget the failures of customers that now succeeded."""
    ledger = run.stores.failures
    for tenant_id, reason in failed.items():
        ledger.record_failure(run.account_id, tenant_id, reason, run.result.run_id)
        log.warning("account %s: customer %s failed: %s", run.account_id, tenant_id, reason)
    recovered = [c.tenant_id for c in customers
                 if c.tenant_id in failing and c.tenant_id not in failed and c.tenant_id not in gone]
    if recovered:
        ledger.clear(run.account_id, recovered)
        for tenant_id in recovered:
            failing.pop(tenant_id, None)


def record_malformed(run: Run, page) -> None:
    for item in page.malformed:
        reason = f"customer list page {page.number} item {item.index}: {item.reason}"
        if item.tenant_id:
            run.stores.failures.record_failure(run.account_id, item.tenant_id, reason, run.result.run_id)
        log.warning("account %s: %s", run.account_id, reason)
    run.result.counts.failed += len(page.malformed)


def organization_content(customer: Customer, billing_profile: dict) -> dict[str, str]:
    """The organization's content: ValueError when the profile cannot be stored as it is."""
    contact = primary_contact_from_billing_profile(billing_profile)
    fields = organization_fields(
        CustomerRecord(
            tenant_id=customer.tenant_id,
            company_name=customer.company_name,
            domain=customer.domain,
            relationship_to_partner=customer.relationship_to_partner,
            indirect_reseller_id=customer.indirect_reseller_id,
        ),
        contact,
    )
    check_table_limits(fields)
    return fields


def _profiles(run: Run, customers: list[Customer]) -> Iterator[tuple[Customer, object]]:
    """Each customer with its billing profile, or its own error, in order as they come in. An
    error about the run (outage, throttling past the retries, tokens, the time budget) stops the
    other fetches and raises where it is met in that order."""
    stop = threading.Event()
    interruptions: list[BaseException] = []

    def fetch(customer: Customer):
        if stop.is_set():
            return None
        try:
            return run.client.get_billing_profile(customer.tenant_id)
        except (RelationshipEndedError, *CUSTOMER_ERRORS) as exc:
            return exc
        except PartnerCenterError as exc:
            interruptions.append(exc)  # before the stop: a fetch skipped by it is never taken for a profile
            stop.set()
            return None

    workers = min(run.options.concurrency, len(customers))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="billing-profile") if workers > 1 else None
    try:
        for customer, outcome in zip(customers, pool.map(fetch, customers) if pool else map(fetch, customers)):
            if interruptions:
                raise run_stopped_by(interruptions[0])
            yield customer, outcome
    finally:
        stop.set()  # a caller that stops early (its write failed) leaves the rest unfetched
        if pool:
            pool.shutdown(cancel_futures=True)


def run_stopped_by(error: PartnerCenterError) -> Exception:
    """What stops the run: the invocation's time, or Partner Center failing it (not one customer).

    A call that would wait for the request budget past the invocation's deadline is the time
    being up, as it is for the page loop: the walk checkpoints, it has not failed.
    """
    if isinstance(error, DeadlineExceeded):
        return error
    interrupted = RunInterrupted(error)
    interrupted.__cause__ = error
    return interrupted
