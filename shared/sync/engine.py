"""The sync engine: reads customers from Partner Center, maps them, and writes organizations.

One :class:`AccountSync` runs one sync of one account. It does not know it runs inside Azure
Functions; it is handed its Partner Center client and its stores.

Both modes walk the customer list page by page (a *stream*); per page they choose the customers
that need a billing profile, fetch those concurrently, map them, write what changed in batches,
and then *checkpoint*. A complete walk is the only evidence that a customer left: organizations
missing from it are marked ``relationship_ended`` (never deleted), unless that would end more
than the deletion guard allows, in which case the endings are held for an operator.
"""

from __future__ import annotations

import logging
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Callable

from shared.contacts.mapping import (
    CustomerRecord,
    changed_fields,
    check_table_limits,
    content_hash,
    organization_fields,
    primary_contact_from_billing_profile,
)
from shared.partner_center import (
    Customer,
    CustomerPage,
    DeadlineExceeded,
    MalformedResponseError,
    NextLink,
    PartnerCenterClient,
    PartnerCenterError,
    RelationshipEndedError,
)
from shared.partner_center.models import parse_customer
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
    organization_state,
)

from .stores import SyncStores

log = logging.getLogger(__name__)

FULL = "full"
INCREMENTAL = "incremental"
CUSTOMER = "customer"
HELD = "held_approval"

# Activity-log operations that mean "read this customer again" or "this relationship ended".
REFRESH_OPERATIONS = {
    "add_customer",
    "update_customer_billing_profile",
    "update_customer_partner_contract_company_name",
    "update_company_info",
}
ENDED_OPERATIONS = {"remove_partner_customer_relationship", "delete_customer", "delete_tip_customer"}


@dataclass
class SyncOptions:
    page_size: int = 500
    concurrency: int = 8
    time_budget_seconds: float = 480.0
    audit_overlap: timedelta = timedelta(minutes=60)
    deletion_guard_percent: float = 10.0
    deletion_guard_minimum: int = 20
    lease_seconds: int = 900
    # The default schedules fire the nightly reconciliation and an incremental run at the same
    # second: the reconciliation waits for the short run's lease instead of missing a night.
    full_lease_wait_seconds: float = 120.0


@dataclass
class RunCounts:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ended: int = 0
    failed: int = 0
    held: int = 0
    excluded_skipped: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


@dataclass
class RunResult:
    """What one run did; the run log keeps the same figures."""

    account_id: str
    mode: str
    run_id: str
    outcome: str  # succeeded | succeeded_with_failures | checkpointed | partial | failed | skipped
    counts: RunCounts = field(default_factory=RunCounts)
    api_calls: int = 0
    throttled_calls: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str = ""
    # The exception that ended a failed run, for callers that answer by its type (not stored).
    failure: BaseException | None = field(default=None, repr=False, compare=False)
    transactions: int = 0
    entities_written: int = 0

    def as_dict(self) -> dict:
        return {
            "account": self.account_id,
            "mode": self.mode,
            "runId": self.run_id,
            "outcome": self.outcome,
            "counts": self.counts.as_dict(),
            "apiCalls": self.api_calls,
            "throttledCalls": self.throttled_calls,
            "transactions": self.transactions,
            "entitiesWritten": self.entities_written,
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "endedAt": self.ended_at.isoformat() if self.ended_at else None,
            "error": self.error,
        }


class _OutOfTime(Exception):
    """The invocation is near its time budget: checkpoint and stop."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class AccountSync:
    """One sync of one Partner Center account into the Organizations table."""

    def __init__(
        self,
        account_id: str,
        client: PartnerCenterClient,
        stores: SyncStores,
        options: SyncOptions | None = None,
        *,
        clock: Callable[[], datetime] = utcnow,
        after_page: Callable[[int], None] | None = None,
        indirect_provider: bool = False,
    ) -> None:
        self.account_id = account_id
        # An indirect provider's customers are attributed to the indirect seller they bought through.
        self.indirect_provider = indirect_provider
        self.client = client
        self.stores = stores
        self.options = options or SyncOptions()
        self._clock = clock
        # A hook between pages: tests use it to kill a run at a chosen point.
        self._after_page = after_page

    # -- what a run can be --------------------------------------------------------------------

    def full(self) -> RunResult:
        """Full reconciliation, resuming a checkpointed walk when one is pending."""
        return self._locked(FULL, self._reconcile, wait_for_lease=self.options.full_lease_wait_seconds)

    def incremental(self) -> RunResult:
        """Incremental sync; then continues a pending full reconciliation with the time left."""
        state = self.stores.state
        if state.get_checkpoint(self.account_id) is None and state.get_watermark(self.account_id) is None:
            # Nothing was ever synced: the first run has to read everything anyway.
            return self.full()
        result = self._locked(INCREMENTAL, self._incremental)
        if result.outcome.startswith("succeeded") and state.get_checkpoint(self.account_id) is not None:
            self.full()
        return result

    def customer(self, tenant_id: str) -> tuple[RunResult, dict | None]:
        """On-demand sync of one customer (manual request or webhook): one Partner Center call.

        It takes no account lease, so it never waits for a long reconciliation; its write is
        guarded by the organization's ETag instead. Returns the run and the stored organization.
        """
        result = self._locked(CUSTOMER, lambda run: run.sync_one(tenant_id.lower()), exclusive=False)
        return result, self.stores.organizations.get(self.account_id, tenant_id.lower())

    def approve_held(self, held_id: str, *, by: str = "") -> RunResult:
        """An operator approved a held mass ending: end those organizations that are still active."""

        def body(run: "_Run") -> None:
            tenant_ids = self.stores.held.approve(self.account_id, held_id, by=by)
            snapshot = self.stores.organizations.snapshot(self.account_id)
            run.end([t for t in tenant_ids if _status(snapshot, t) == STATUS_ACTIVE], snapshot)
            run.result.outcome = "succeeded"

        return self._locked(HELD, body)

    # -- run plumbing ------------------------------------------------------------------------

    def _covered_since(self, mode: str, moment: datetime) -> bool:
        last = self.stores.runs.last_completed(self.account_id, mode)
        return last is not None and last.started_at >= moment

    def _acquire_lease(self, wait_seconds: float):
        owner = uuid.uuid4().hex
        give_up = time.monotonic() + wait_seconds
        while True:
            lease = self.stores.state.acquire(self.account_id, owner, self.options.lease_seconds)
            if lease is not None or time.monotonic() >= give_up:
                return lease
            time.sleep(min(2.0, max(0.0, give_up - time.monotonic())))

    def _indirect_sellers(self) -> dict[str, str]:
        """Customer → indirect seller for the whole account: one call per seller, not per customer."""
        sellers = {}
        for reseller in self.client.iter_indirect_resellers():
            for tenant_id in self.client.iter_reseller_customers(reseller, page_size=self.options.page_size):
                sellers[tenant_id] = reseller
        return sellers

    def _with_indirect_seller(self, customer: Customer, known: OrganizationState | None) -> Customer:
        """The customer with its indirect seller: as stored when known, else asked for (one call)."""
        if customer.indirect_reseller_id:
            return customer
        if known is not None:
            return replace(customer, indirect_reseller_id=known.indirect_reseller_id)
        return replace(customer, indirect_reseller_id=self.client.get_customer_indirect_reseller(customer.tenant_id))

    def _locked(self, mode: str, body: Callable[["_Run"], None], *, exclusive: bool = True,
                wait_for_lease: float = 0.0) -> RunResult:
        started = self._clock()
        lease = self._acquire_lease(wait_for_lease) if exclusive else None
        if lease is not None and wait_for_lease and self._covered_since(mode, started):
            # While this run waited, another run of the same mode did the same work.
            self.stores.state.release(lease)
            lease = None
        record = self.stores.runs.start(self.account_id, mode)
        result = RunResult(self.account_id, mode, record.run_id, "skipped", started_at=started)
        if exclusive and lease is None:
            result.error = "another run of this account holds the lease, or did this run's work meanwhile"
            result.ended_at = self._clock()
            self.stores.runs.finish(record, "skipped", {}, api_calls=0, throttled_calls=0, error=result.error)
            log.info("account %s: %s run skipped, another run is active", self.account_id, mode)
            return result
        run = _Run(self, result, lease)
        calls_before, throttled_before = self.client.stats.calls, self.client.stats.throttled
        self.client.deadline = time.monotonic() + self.options.time_budget_seconds
        try:
            body(run)
            if result.outcome == "succeeded" and result.counts.failed:
                result.outcome = "succeeded_with_failures"
        except Exception as exc:  # the run log must say why any run ended
            result.outcome = "failed"
            result.error = _describe(exc)
            result.failure = exc
            log.exception("account %s: %s run %s failed", self.account_id, mode, result.run_id)
        finally:
            result.api_calls = self.client.stats.calls - calls_before
            result.throttled_calls = self.client.stats.throttled - throttled_before
            result.ended_at = self._clock()
            try:
                self.stores.runs.finish(
                    record, result.outcome, result.counts.as_dict(),
                    api_calls=result.api_calls, throttled_calls=result.throttled_calls, error=result.error,
                )
            finally:
                if run.lease is not None:
                    self.stores.state.release(run.lease)
        return result

    def _reconcile(self, run: "_Run") -> None:
        state = self.stores.state
        saved = state.get_checkpoint(self.account_id)
        checkpoint, etag = (saved.data, saved.etag) if saved else ({}, None)
        walk_id = checkpoint.get("walkId") or run.result.run_id
        start = NextLink.from_dict(checkpoint["next"]) if checkpoint.get("next") else None
        page_number = checkpoint.get("page", 0)
        if checkpoint:
            log.info("account %s: resuming reconciliation walk %s at page %d", self.account_id, walk_id, page_number + 1)
        snapshot = self.stores.organizations.snapshot(self.account_id)
        failing = self.stores.failures.failing(self.account_id)
        walk_started = checkpoint.get("startedAt") or run.result.started_at.isoformat()
        sellers = self._indirect_sellers() if self.indirect_provider else None

        def store_page(plan: _PagePlan, page: CustomerPage, number: int) -> None:
            nonlocal etag
            run.commit(plan, failing)
            self.stores.walk.record_page(self.account_id, walk_id, number, _page_ids(page))
            position = {"walkId": walk_id, "page": number, "startedAt": walk_started,
                        "next": page.next_link.to_dict() if page.next_link else None}
            etag = state.save_checkpoint(self.account_id, position, etag)
            if self._after_page:
                self._after_page(number)

        # One page is stored while the next one's billing profiles are fetched. Pages are stored
        # strictly in order, so a checkpoint never runs ahead of the writes it covers.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="page-writer") as writer:
            storing = None
            for page in self.client.iter_customer_pages(page_size=self.options.page_size, start=start):
                page_number += 1
                wanted = [c for c in page.customers if _status(snapshot, c.tenant_id) != STATUS_EXCLUDED]
                run.result.counts.excluded_skipped += len(page.customers) - len(wanted)
                if sellers is not None:
                    wanted = [replace(c, indirect_reseller_id=sellers.get(c.tenant_id, "")) for c in wanted]
                plan = run.plan_customers(wanted, snapshot)
                run.record_malformed(page)
                if storing is not None:
                    storing.result()
                storing = writer.submit(store_page, plan, page, page_number)
                if page.next_link is None:
                    break
                if run.near_budget():
                    storing.result()
                    run.result.outcome = "checkpointed"
                    log.info("account %s: time budget nearly spent, walk %s checkpointed at page %d",
                             self.account_id, walk_id, page_number)
                    return
                run.keep_lease()
            if storing is not None:
                storing.result()
        seen = self.stores.walk.seen(self.account_id, walk_id)
        run.end_missing(snapshot, seen)
        state.clear_checkpoint(self.account_id, etag)
        self.stores.walk.discard(self.account_id, walk_id)
        state.set_reconciled_through(self.account_id, datetime.fromisoformat(walk_started))
        if state.get_watermark(self.account_id) is None:
            # A first reconciliation covers everything up to its own start.
            state.set_watermark(self.account_id, datetime.fromisoformat(walk_started))
        run.result.outcome = "succeeded"

    def _incremental(self, run: "_Run") -> None:
        state = self.stores.state
        watermark = state.get_watermark(self.account_id)
        started = run.result.started_at
        window_start = watermark - self.options.audit_overlap
        already_applied = state.applied_records(self.account_id)
        # A change dated before the last complete walk started was read by that walk.
        reconciled = state.get_reconciled_through(self.account_id) or window_start
        applied = {rid: at for rid, at in already_applied.items() if at >= started - self.options.audit_overlap}
        refresh, ended = set(), set()
        for record in self.client.iter_audit_records(window_start, started):
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
        snapshot = self.stores.organizations.snapshot(self.account_id)
        failing = self.stores.failures.failing(self.account_id)
        retry = {tenant for tenant, failure in failing.items() if not failure.quarantined}
        seen: set[str] = set()
        for page in self.client.iter_customer_pages(page_size=self.options.page_size):
            seen.update(_page_ids(page))
            wanted = []
            for customer in page.customers:
                status = _status(snapshot, customer.tenant_id)
                if status == STATUS_EXCLUDED:
                    continue
                if (status is None or status == STATUS_RELATIONSHIP_ENDED or customer.tenant_id in refresh
                        or customer.tenant_id in retry):
                    wanted.append(customer)
            if self.indirect_provider:
                wanted = [self._with_indirect_seller(c, snapshot.get(c.tenant_id)) for c in wanted]
            run.sync_customers(wanted, snapshot, failing)
            run.record_malformed(page)
            if page.next_link is not None and run.near_budget():
                run.result.outcome = "partial"
                run.result.error = "time budget spent before the customer list was walked; watermark kept"
                return
        run.end_missing(snapshot, seen, confirmed=ended)
        # Only now is everything up to the run's start stored: the watermark may move.
        next_window = started - self.options.audit_overlap
        state.set_watermark(self.account_id, started, {r: at for r, at in applied.items() if at >= next_window})
        run.result.outcome = "succeeded"


@dataclass
class _PagePlan:
    """What one page of customers needs written."""

    customers: list[Customer]
    writes: list[OrganizationWrite] = field(default_factory=list)
    changes: list[ChangeEntry] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


class _Run:
    """The state of one run: counts, the lease, and the per-page work."""

    def __init__(self, sync: AccountSync, result: RunResult, lease) -> None:
        self.sync = sync
        self.result = result
        self.lease = lease
        self._started = time.monotonic()
        self._lease_renewed = self._started
        self._slowest_page = 0.0
        self._page_started = self._started

    @property
    def account_id(self) -> str:
        return self.sync.account_id

    def near_budget(self) -> bool:
        """True when another page might not fit in what is left of the time budget."""
        now = time.monotonic()
        self._slowest_page = max(self._slowest_page, now - self._page_started)
        self._page_started = now
        left = self.sync.options.time_budget_seconds - (now - self._started)
        return left < 2 * self._slowest_page + 5

    def keep_lease(self) -> None:
        if self.lease is not None and time.monotonic() - self._lease_renewed > self.sync.options.lease_seconds / 3:
            self.lease = self.sync.stores.state.renew(self.lease, self.sync.options.lease_seconds)
            self._lease_renewed = time.monotonic()

    def sync_customers(self, customers: list[Customer], snapshot: dict, failing: dict) -> None:
        """Fetch, map and write the given customers of one page."""
        self.commit(self.plan_customers(customers, snapshot), failing)

    def plan_customers(self, customers: list[Customer], snapshot: dict) -> "_PagePlan":
        """Fetch and map the given customers; decide what to write (nothing for unchanged ones)."""
        # A page that lists a customer twice must not write it twice in one transaction.
        customers = list({c.tenant_id: c for c in customers}.values())
        plan = _PagePlan(customers)
        if not customers:
            return plan
        profiles = self._fetch_profiles(customers)
        now = self.sync._clock()
        for customer in customers:
            outcome = profiles[customer.tenant_id]
            if isinstance(outcome, Exception):
                plan.failed[customer.tenant_id] = _describe(outcome)
                continue
            try:
                fields = _organization_fields(customer, outcome)
            except ValueError as exc:
                plan.failed[customer.tenant_id] = f"billing profile rejected: {exc}"
                continue
            self._plan_write(customer.tenant_id, fields, snapshot, now, plan.writes, plan.changes)
        self.result.counts.failed += len(plan.failed)
        return plan

    def commit(self, plan: "_PagePlan", failing: dict) -> None:
        """Store a page's plan: organizations and change log, then the failure ledger."""
        self._write(plan.writes, plan.changes)
        self._settle_failures(plan.customers, plan.failed, failing)

    def sync_one(self, tenant_id: str) -> None:
        """Read one customer (its billing profile comes with it) and write its organization."""
        stored = self.sync.stores.organizations.get(self.account_id, tenant_id)
        snapshot = {tenant_id: organization_state(stored)} if stored is not None else {}
        if stored is not None and stored.get("Status") == STATUS_EXCLUDED:
            self.result.counts.excluded_skipped += 1
        else:
            try:
                body = self.sync.client.get_customer(tenant_id)
            except RelationshipEndedError:
                if stored is not None and stored.get("Status") == STATUS_ACTIVE:
                    self.end([tenant_id], snapshot)
                self.result.outcome = "succeeded"
                return
            try:
                customer = parse_customer(body)
                if self.sync.indirect_provider:
                    customer = self.sync._with_indirect_seller(customer, snapshot.get(tenant_id))
                profile = body.get("billingProfile")
                if not isinstance(profile, dict):
                    profile = self.sync.client.get_billing_profile(tenant_id)
                fields = _organization_fields(customer, profile)
            except ValueError as exc:
                self.sync.stores.failures.record_failure(self.account_id, tenant_id, str(exc), self.result.run_id)
                raise MalformedResponseError(f"customer {tenant_id}: {exc}", resource=tenant_id) from exc
            writes, changes = [], []
            self._plan_write(tenant_id, fields, snapshot, self.sync._clock(), writes, changes)
            self._write(writes, changes)
            self.sync.stores.failures.clear(self.account_id, [tenant_id])
        self.result.outcome = "succeeded"

    def _fetch_profiles(self, customers: list[Customer]) -> dict[str, object]:
        def fetch(customer: Customer):
            try:
                return self.sync.client.get_billing_profile(customer.tenant_id)
            except DeadlineExceeded:
                raise
            except PartnerCenterError as exc:
                return exc

        workers = min(self.sync.options.concurrency, len(customers))
        if workers <= 1:
            return {c.tenant_id: fetch(c) for c in customers}
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="billing-profile") as pool:
            return dict(zip((c.tenant_id for c in customers), pool.map(fetch, customers)))

    def _plan_write(self, tenant_id, fields, snapshot, now, writes, changes) -> None:
        counts = self.result.counts
        known = snapshot.get(tenant_id)
        digest = content_hash(fields)
        if known is None:
            writes.append(OrganizationWrite(tenant_id, CREATE, now, fields))
            changes.append(ChangeEntry(tenant_id, CREATE, now, changed_fields({}, fields)))
            counts.created += 1
        else:
            reactivated = known.status == STATUS_RELATIONSHIP_ENDED
            if known.content_hash == digest and not reactivated:
                counts.unchanged += 1
                return
            # Only a changed organization costs a point read: the change log needs its old values.
            diff = changed_fields(self.sync.stores.organizations.get(self.account_id, tenant_id) or {}, fields)
            if reactivated:
                diff["Status"] = (STATUS_RELATIONSHIP_ENDED, STATUS_ACTIVE)
            writes.append(OrganizationWrite(tenant_id, UPDATE, now, fields, previous=known))
            changes.append(ChangeEntry(tenant_id, UPDATE, now, diff))
            counts.updated += 1
        snapshot[tenant_id] = OrganizationState(STATUS_ACTIVE, digest, "", fields["IndirectResellerId"])

    def _write(self, writes: list[OrganizationWrite], changes: list[ChangeEntry]) -> None:
        if not writes:
            return
        # The change log goes first: a crash in between replays the change, it never loses it.
        self.sync.stores.changes.record(self.account_id, self.result.run_id, changes)
        stats = self.sync.stores.organizations.apply(self.account_id, writes)
        self.result.transactions += stats.transactions
        self.result.entities_written += stats.entities

    def _settle_failures(self, customers: list[Customer], failed: dict[str, str], failing: dict) -> None:
        ledger = self.sync.stores.failures
        for tenant_id, reason in failed.items():
            ledger.record_failure(self.account_id, tenant_id, reason, self.result.run_id)
            log.warning("account %s: customer %s failed: %s", self.account_id, tenant_id, reason)
        recovered = [c.tenant_id for c in customers if c.tenant_id in failing and c.tenant_id not in failed]
        if recovered:
            ledger.clear(self.account_id, recovered)
            for tenant_id in recovered:
                failing.pop(tenant_id, None)

    def record_malformed(self, page: CustomerPage) -> None:
        for item in page.malformed:
            reason = f"customer list page {page.number} item {item.index}: {item.reason}"
            if item.tenant_id:
                self.sync.stores.failures.record_failure(self.account_id, item.tenant_id, reason, self.result.run_id)
            log.warning("account %s: %s", self.account_id, reason)
        self.result.counts.failed += len(page.malformed)

    def end_missing(self, snapshot: dict, seen: set[str], confirmed: set[str] = frozenset()) -> None:
        """Mark organizations missing from a complete walk as ended, behind the deletion guard.

        Endings the activity log ``confirmed`` are Partner Center's own word, not a list that
        came back short, so the guard does not hold those back.
        """
        active = [t for t, s in snapshot.items() if s.status == STATUS_ACTIVE]
        missing = sorted(t for t in active if t not in seen)
        sure = [t for t in missing if t in confirmed]
        unconfirmed = [t for t in missing if t not in confirmed]
        options = self.sync.options
        threshold = max(options.deletion_guard_minimum, len(active) * options.deletion_guard_percent / 100)
        if len(unconfirmed) > threshold:
            held_id = self.sync.stores.held.hold(self.account_id, self.result.run_id, unconfirmed, len(active))
            self.result.counts.held += len(unconfirmed)
            log.warning("account %s: %d of %d active organizations would end; held as %s for an operator",
                        self.account_id, len(unconfirmed), len(active), held_id)
            unconfirmed = []
        if sure or unconfirmed:
            self.end(sure + unconfirmed, snapshot)

    def end(self, tenant_ids: list[str], snapshot: dict) -> None:
        now = self.sync._clock()
        writes = [OrganizationWrite(t, END, now, previous=snapshot.get(t)) for t in tenant_ids]
        changes = [ChangeEntry(t, END, now, {"Status": (STATUS_ACTIVE, STATUS_RELATIONSHIP_ENDED)}) for t in tenant_ids]
        self._write(writes, changes)
        self.result.counts.ended += len(tenant_ids)


def _organization_fields(customer: Customer, billing_profile: dict) -> dict[str, str]:
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


def _status(snapshot: dict, tenant_id: str) -> str | None:
    known = snapshot.get(tenant_id)
    return known.status if known is not None else None


def _page_ids(page: CustomerPage) -> list[str]:
    return [c.tenant_id for c in page.customers] + [m.tenant_id for m in page.malformed if m.tenant_id]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, RelationshipEndedError):
        return f"relationship ended (403 code 20002) {exc}"
    return f"{type(exc).__name__}: {exc}"
