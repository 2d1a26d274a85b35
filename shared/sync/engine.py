"""The sync engine: what a run of one account can be, and the frame every run goes through.

One :class:`AccountSync` runs the syncs of one account. It does not know it runs inside Azure
Functions; it is handed its Partner Center client, its stores and the invocation's time budget.
The work itself lives beside it: :mod:`.reconciliation` (full walk), :mod:`.incremental`,
:mod:`.endings` (the deletion guard), :mod:`.writes` (the write path), :mod:`.run` (plumbing).
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import datetime
from typing import Callable

from shared import telemetry
from shared.credentials import TokenUnavailable
from shared.partner_center import (
    AuthenticationError,
    Customer,
    DeadlineExceeded,
    MalformedResponseError,
    PartnerCenterClient,
    RelationshipEndedError,
)
from shared.keys import utc_now
from shared.partner_center.models import parse_customer
from shared.store import STATUS_ACTIVE, STATUS_EXCLUDED, OrganizationState, organization_state
from shared.store.runs import RunOutcome

from .change_log import settle_change_log_or_say_why
from .endings import continue_approvals, end_approved_held
from .incremental import incremental
from .reconciliation import reconcile
from .run import (
    CUSTOMER,
    FULL,
    HELD,
    INCREMENTAL,
    Deadline,
    LeaseKeeper,
    Run,
    RunCounts,
    RunResult,
    SyncOptions,
    acquire_lease,
    close_abandoned_runs,
    describe,
)
from .stores import SyncStores
from .writes import RunInterrupted, organization_content, plan_content_write, plan_ending, store

__all__ = ["AccountSync", "CUSTOMER", "Deadline", "FULL", "HELD", "INCREMENTAL", "RunCounts", "RunResult",
           "SyncOptions"]

log = logging.getLogger(__name__)


class AccountSync:
    """The syncs of one Partner Center account into the Organizations table."""

    def __init__(
        self,
        account_id: str,
        client: PartnerCenterClient,
        stores: SyncStores,
        options: SyncOptions | None = None,
        *,
        clock: Callable[[], datetime] = utc_now,
        after_page: Callable[[int], None] | None = None,
        indirect_provider: bool = False,
    ) -> None:
        self.account_id = account_id
        # An indirect provider's customers are attributed to the indirect seller they bought through.
        self.indirect_provider = indirect_provider
        self.client = client
        self.stores = stores
        self.options = options or SyncOptions()
        self.clock = clock
        # A hook between pages: tests use it to kill a run at a chosen point.
        self.after_page = after_page

    # -- what a run can be --------------------------------------------------------------------

    def full(self, deadline: Deadline | None = None) -> RunResult:
        """Full reconciliation, resuming a checkpointed walk when one is pending."""
        return self._run(FULL, reconcile, deadline, wait_for_lease=self.options.full_lease_wait_seconds)

    def incremental(self, deadline: Deadline | None = None) -> RunResult:
        """Incremental sync; then, with the time left, an approval or a reconciliation left midway."""
        deadline = deadline or self._deadline()
        state = self.stores.state
        if state.get_checkpoint(self.account_id) is None and state.get_watermark(self.account_id) is None:
            # Nothing was ever synced: the first run has to read everything anyway.
            return self.full(deadline)

        def body(run: Run) -> None:
            with self.client.first_in_line():  # new customers ahead of a walk of this process
                incremental(run)
            if run.result.outcome == RunOutcome.SUCCEEDED and deadline.left() > 30:
                continue_approvals(run)
                run.result.outcome = RunOutcome.SUCCEEDED

        began = time.monotonic()
        result = self._run(INCREMENTAL, body, deadline)
        # A pending walk goes on with the time left, but only until shortly before the next tick.
        until_next_tick = Deadline(min(deadline.at, began + 0.8 * self.options.incremental_interval_seconds))
        if result.outcome in (RunOutcome.SUCCEEDED, RunOutcome.SUCCEEDED_WITH_FAILURES) \
                and state.get_checkpoint(self.account_id) is not None and until_next_tick.left() > 30:
            with telemetry.run_span(self.account_id, FULL, correlation_id=self.client.correlation_id) as span:
                telemetry.record_run(span, self.full(until_next_tick))
        return result

    def customer(self, tenant_id: str, deadline: Deadline | None = None) -> tuple[RunResult, dict | None]:
        """On-demand sync of one customer (manual request or webhook): one Partner Center call.

        It takes no account lease, so it never waits for a long reconciliation; its write is
        guarded by the organization's ETag instead, and a run it races re-reads and decides again.
        Returns the run and the stored organization.
        """
        tenant = tenant_id.lower()
        result = self._run(CUSTOMER, lambda run: self._sync_one(run, tenant), deadline, exclusive=False)
        return result, self.stores.organizations.get(self.account_id, tenant)

    def approve_held(self, held_id: str, *, by: str = "", deadline: Deadline | None = None) -> RunResult:
        """An operator approved a held ending: end those organizations Partner Center confirms gone."""
        return self._run(HELD, lambda run: end_approved_held(run, held_id, by), deadline)

    # -- parts the work modules ask for --------------------------------------------------------

    def indirect_sellers(self) -> dict[str, str]:
        """Customer → indirect seller for the whole account: one call per seller, not per customer."""
        sellers = {}
        for reseller in self.client.iter_indirect_resellers():
            for tenant_id in self.client.iter_reseller_customers(reseller, page_size=self.options.page_size):
                sellers[tenant_id] = reseller
        return sellers

    def with_indirect_seller(self, customer: Customer, known: OrganizationState | None) -> Customer:
        """The customer with its indirect seller: as stored when known, else asked for (one call)."""
        if customer.indirect_reseller_id:
            return customer
        if known is not None:
            return replace(customer, indirect_reseller_id=known.indirect_reseller_id)
        return replace(customer, indirect_reseller_id=self.client.get_customer_indirect_reseller(customer.tenant_id))

    # -- the frame of every run ------------------------------------------------------------------

    def _deadline(self) -> Deadline:
        return Deadline.starting_now(self.options.time_budget_seconds)

    def _covered_since(self, mode: str, moment: datetime) -> bool:
        last = self.stores.runs.last_completed(self.account_id, mode)
        return last is not None and last.started_at >= moment

    def _run(self, mode: str, body: Callable[[Run], None], deadline: Deadline | None, *,
             exclusive: bool = True, wait_for_lease: float = 0.0) -> RunResult:
        deadline = deadline or self._deadline()
        started = self.clock()
        keeper = None
        if exclusive:
            lease = acquire_lease(self, mode, deadline, wait_for_lease)
            if lease is not None and wait_for_lease and self._covered_since(mode, started):
                # While this run waited, another run of the same mode did the same work.
                self.stores.state.release(lease)
                lease = None
            if lease is not None:
                keeper = LeaseKeeper(self.stores.state, lease, self.options.lease_seconds)
        try:
            if keeper is not None:
                close_abandoned_runs(self, mode, started)
            record = self.stores.runs.start(self.account_id, mode)
            telemetry.bind_run_id(record.run_id)
            result = RunResult(self.account_id, mode, record.run_id, RunOutcome.SKIPPED, started_at=started)
            if exclusive and keeper is None:
                result.error = "another run of this account holds the lease, or did this run's work meanwhile"
                result.ended_at = self.clock()
                self.stores.runs.finish(record, RunOutcome.SKIPPED, {}, api_calls=0, throttled_calls=0,
                                        error=result.error)
                log.info("account %s: %s run skipped, another run is active", self.account_id, mode)
                return result
            return self._carry_out(Run(self, result, record, deadline, keeper), body)
        finally:
            if keeper is not None:
                keeper.release()

    def _carry_out(self, run: Run, body: Callable[[Run], None]) -> RunResult:
        result = run.result
        calls_before, throttled_before = self.client.stats.calls, self.client.stats.throttled
        self.client.deadline = run.deadline.at
        try:
            body(run)
            if result.outcome == RunOutcome.SUCCEEDED and result.counts.failed:
                result.outcome = RunOutcome.SUCCEEDED_WITH_FAILURES
        except DeadlineExceeded as exc:
            # The invocation's time is up: what is stored stays, the checkpoint says where to go on.
            if result.mode in (FULL, HELD):
                result.outcome = RunOutcome.CHECKPOINTED
            elif result.mode == INCREMENTAL:
                result.outcome, result.error = RunOutcome.PARTIAL, "time budget spent; watermark kept"
            else:
                result.outcome, result.error = RunOutcome.FAILED, describe(exc)
            result.notes.append(f"stopped at the invocation's time budget: {exc}")
        except RunInterrupted as exc:
            result.outcome = RunOutcome.FAILED
            result.error = f"Partner Center failed the run (not one customer): {exc}"
            result.failure = exc.cause
            log.error("account %s: %s run %s stopped: %s", self.account_id, result.mode, result.run_id, exc)
        except (TokenUnavailable, AuthenticationError) as exc:
            # No token (storage's identity, Partner Center's credentials): the message names them.
            result.outcome, result.error, result.failure = RunOutcome.FAILED, str(exc), exc
            log.error("account %s: %s run %s stopped: %s", self.account_id, result.mode, result.run_id, exc)
        except Exception as exc:  # the run log must say why any run ended
            result.outcome = RunOutcome.FAILED
            result.error = describe(exc)
            result.failure = exc
            log.exception("account %s: %s run %s failed", self.account_id, result.mode, result.run_id)
        finally:
            if run.unsettled:
                self._settle(run)
            result.api_calls = self.client.stats.calls - calls_before
            result.throttled_calls = self.client.stats.throttled - throttled_before
            result.ended_at = self.clock()
            self.stores.runs.finish(
                run.record, result.outcome, result.counts.as_dict(),
                api_calls=result.api_calls, throttled_calls=result.throttled_calls, error=result.error,
                notes="; ".join(result.notes),
            )
        return result

    def _settle(self, run: Run) -> None:
        """A write failed midway: take back the entries of its changes that did not land."""
        why = settle_change_log_or_say_why(self.stores, self.account_id, run.result.run_id,
                                           since=run.result.started_at, tenant_ids=run.unsettled)
        if why:
            run.note(f"change log not settled after a failed write ({why}): it may list changes of "
                     f"{len(run.unsettled)} organization(s) that were not stored")

    def _sync_one(self, run: Run, tenant_id: str) -> None:
        """Read one customer (its billing profile comes with it) and write its organization."""
        stored = self.stores.organizations.get(self.account_id, tenant_id)
        snapshot = {tenant_id: organization_state(stored)} if stored is not None else {}
        run.result.outcome = RunOutcome.SUCCEEDED
        if stored is not None and stored.get("Status") == STATUS_EXCLUDED:
            run.result.counts.excluded_skipped += 1
            return
        try:
            body = self.client.get_customer(tenant_id)
        except RelationshipEndedError:
            if stored is not None and stored.get("Status") == STATUS_ACTIVE:
                store(run, [plan_ending(tenant_id, snapshot[tenant_id], run.now())])
            return
        try:
            customer = parse_customer(body)
            if not run.synced_kind(customer):
                # Partner Center keeps the customer under another kind of relationship now.
                if stored is not None and stored.get("Status") == STATUS_ACTIVE:
                    store(run, [plan_ending(tenant_id, snapshot[tenant_id], run.now())])
                return
            if self.indirect_provider:
                customer = self.with_indirect_seller(customer, snapshot.get(tenant_id))
            profile = body.get("billingProfile")
            if not isinstance(profile, dict):
                profile = self.client.get_billing_profile(tenant_id)
            fields = organization_content(customer, profile)
        except ValueError as exc:
            self.stores.failures.record_failure(self.account_id, tenant_id, str(exc), run.result.run_id)
            raise MalformedResponseError(f"customer {tenant_id}: {exc}", resource=tenant_id) from exc
        planned = plan_content_write(run, tenant_id, fields, snapshot, run.now())
        store(run, [planned] if planned is not None else [])
        self.stores.failures.clear(self.account_id, [tenant_id])
