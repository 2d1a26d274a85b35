"""Endings and the deletion guard: which organizations a walk may mark ``relationship_ended``.

A walk can span many invocations while timers, webhooks and on-demand syncs keep writing. So a
walk's silence about a customer is evidence only against an organization that was active, and
unwritten, since before the walk began: anything created, updated or reactivated after that was
seen alive by someone else and is never this walk's to end. An empty list is never taken as the
truth for an account that has organizations, and more endings than the guard allows are held for
an operator, whose approval is confirmed with Partner Center customer by customer.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Iterable

from shared.partner_center import CustomerNotFoundError, DeadlineExceeded, PartnerCenterError, RelationshipEndedError
from shared.partner_center.models import parse_customer
from shared.store import APPROVED, STATUS_ACTIVE, STATUS_RELATIONSHIP_ENDED, OrganizationState
from shared.store.runs import RunOutcome

from .run import Run
from .writes import plan_ending, run_stopped_by, store

log = logging.getLogger(__name__)

# Confirmations asked of Partner Center before their endings are stored together.
_CONFIRM_CHUNK = 100


def end_missing(run: Run, *, walk_started: datetime, seen, listed: int,
                confirmed: frozenset[str] | set[str] = frozenset(),
                candidates: Iterable[tuple[str, OrganizationState]] | None = None,
                active_count: int | None = None) -> None:
    """End the organizations a complete walk did not see, behind the deletion guard.

    ``walk_started``: when the walk began (its first invocation). ``seen``: the tenant ids the walk
    listed (any container; a :class:`~shared.store.tenant_set.TenantSet` keeps it small).
    ``listed``: how many customers the whole walk listed. Endings the activity log ``confirmed``
    are Partner Center's own word, not a list that came back short, so the threshold does not hold
    them back. Every ending is confirmed with Partner Center (one call) before it is stored.
    ``candidates``: the organizations that may be missing, with ``active_count`` (how many are
    active) for the threshold, when the caller knows them (an incremental run whose previous list
    it trusts); by default every organization of the account, streamed.
    """
    # Read now, not when the walk began: organizations other writers created meanwhile count. One
    # read in this invocation is as good: what was written after it is fresh, never ended, and a
    # state that changed since makes the ETag-guarded ending a conflict, decided again.
    rows = candidates if candidates is not None else run.stores.organizations.each_state(
        run.account_id, status=STATUS_ACTIVE)
    fresh_after = walk_started - run.options.clock_skew
    found, active = _missing(rows, seen, fresh_after)
    snapshot: dict[str, OrganizationState] = dict(found)  # the missing ones only: memory stays flat
    if active_count is not None:
        active = max(active_count, len(snapshot))
    missing = sorted(snapshot)
    sure = [t for t in missing if t in confirmed]
    unconfirmed = [t for t in missing if t not in confirmed]
    options = run.options
    threshold = max(options.deletion_guard_minimum, active * options.deletion_guard_percent / 100)
    if unconfirmed and (listed == 0 or len(unconfirmed) > threshold):
        why = "the customer list came back empty" if listed == 0 else \
            f"{len(unconfirmed)} of {active} active organizations would end"
        held_id = run.stores.held.hold(run.account_id, run.result.run_id, unconfirmed, active)
        run.result.counts.held += len(unconfirmed)
        log.warning("account %s: %s; held as %s for an operator", run.account_id, why, held_id)
        unconfirmed = []
    endings = sure + unconfirmed
    if not endings:
        return
    # A list can miss a live customer (it left and came back while the walk passed its page, or
    # the list shifted under the walk): Partner Center confirms each ending first, one call each.
    gone = [t for t, is_gone in zip(endings, _confirm_gone(run, endings)) if is_gone]
    if len(gone) < len(endings):
        log.info("account %s: %d organization(s) missing from the walk are still Partner Center customers; "
                 "kept active", run.account_id, len(endings) - len(gone))
    if gone:
        store(run, [plan_ending(t, snapshot[t], run.now(), fresh_after) for t in gone])


def read_candidates(run: Run, *, walk_started: datetime, seen, leave_out: set[str],
                    stop: threading.Event) -> tuple[list[tuple[str, OrganizationState]], int]:
    """What :func:`end_missing` reads at a walk's end, read ahead while the walk's last page is
    fetched: the active organizations unwritten since the walk began that the walk has not seen
    so far (``seen``), and how many are active, those in ``leave_out`` (the last page's customers,
    counted by the caller as the page leaves them) not counted. The same rule as the read at the
    end holds: what is written after this read is fresh, never ended. Returns early once ``stop``
    is set (the walk does not end in this run)."""
    return _missing(run.stores.organizations.each_state(run.account_id, status=STATUS_ACTIVE), seen,
                    walk_started - run.options.clock_skew, leave_out=leave_out, stop=stop)


def _missing(rows, seen, fresh_after: datetime, *, leave_out: set[str] = frozenset(),
             stop: threading.Event | None = None) -> tuple[list[tuple[str, OrganizationState]], int]:
    """The active organizations of ``rows`` unwritten since ``fresh_after`` that ``seen`` lacks, and
    how many of ``rows`` are active (those in ``leave_out`` not counted); early once ``stop`` is set."""
    active, missing = 0, []
    for tenant, state in rows:
        if stop is not None and stop.is_set():
            break
        if state.status != STATUS_ACTIVE:
            continue
        active += tenant not in leave_out
        if tenant not in seen and _unwritten_since(state, fresh_after):
            missing.append((tenant, state))
    return missing, active


def end_approved_held(run: Run, held_id: str, by: str) -> None:
    """Carry out (or carry on) an operator's approval of a held ending.

    Each organization still active is ended only once Partner Center confirms the customer is
    gone (403 code 20002, or 404, or a relationship kind that does not sync); one it still serves
    as a synced kind stays active. A failure or the time budget
    stops midway with the hold ``approving``; approving again, or the next run, continues it.
    """
    held = run.stores.held.approve(run.account_id, held_id, by=by)
    if held.status == APPROVED:
        run.note(f"held ending {held_id} was already approved ({held.ended_count} ended, {held.kept_count} kept)")
        run.result.outcome = RunOutcome.SUCCEEDED
        return
    tenants = run.stores.held.tenant_ids(run.account_id, held_id)
    snapshot = run.stores.organizations.statuses(run.account_id)
    ended = sum(1 for t in tenants if _status(snapshot, t) == STATUS_RELATIONSHIP_ENDED)
    kept = sum(1 for t in tenants if _status(snapshot, t) not in (STATUS_ACTIVE, STATUS_RELATIONSHIP_ENDED))
    waiting = [t for t in tenants if _status(snapshot, t) == STATUS_ACTIVE]
    for start in range(0, len(waiting), _CONFIRM_CHUNK):
        if run.deadline.left() < 10:
            raise DeadlineExceeded(f"held ending {held_id}: {len(waiting) - start} endings still to confirm")
        chunk = waiting[start:start + _CONFIRM_CHUNK]
        gone = [t for t, is_gone in zip(chunk, _confirm_gone(run, chunk)) if is_gone]
        kept += len(chunk) - len(gone)
        store(run, [plan_ending(t, snapshot[t], run.now(), by=held.decided_by) for t in gone])
        ended += len(gone)
    run.stores.held.complete_approval(run.account_id, held_id, ended=ended, kept=kept)
    if kept:
        run.note(f"held ending {held_id}: {kept} organization(s) kept, Partner Center still lists them")
    run.result.outcome = RunOutcome.SUCCEEDED


def continue_approvals(run: Run) -> None:
    """Approvals an earlier attempt left midway are finished by the account's next run."""
    for held in run.stores.held.approving(run.account_id):
        log.info("account %s: continuing the approval of held ending %s", run.account_id, held.held_id)
        end_approved_held(run, held.held_id, held.decided_by)


def _confirm_gone(run: Run, tenants: list[str]) -> list[bool]:
    """For each tenant, whether Partner Center says the relationship is gone: 403 20002 or 404, or
    the customer still answers under a relationship kind that does not sync (reseller to advisor)."""
    def gone(tenant_id: str) -> bool:
        try:
            body = run.client.get_customer(tenant_id)
        except (RelationshipEndedError, CustomerNotFoundError):
            return True
        except PartnerCenterError as exc:
            raise run_stopped_by(exc)
        try:
            customer = parse_customer(body)
        except ValueError:
            return False  # an answer that cannot be read proves no ending
        return not run.synced_kind(customer)

    with ThreadPoolExecutor(max_workers=max(1, min(run.options.concurrency, len(tenants))),
                            thread_name_prefix="confirm-ending") as pool:
        return list(pool.map(gone, tenants))


def _unwritten_since(state: OrganizationState, moment: datetime) -> bool:
    return state.changed_at is not None and state.changed_at < moment


def _status(snapshot: dict, tenant_id: str) -> str | None:
    known = snapshot.get(tenant_id)
    return known.status if known is not None else None
