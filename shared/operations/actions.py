"""What operators do every day (docs/http-api.md): sync now, sync one customer, exclude and include a
customer, approve or reject a held ending.

Plain code with its stores and syncs handed in; the HTTP triggers only parse and answer. Refusals
are typed (:class:`UnknownOrganization`, :class:`ActionConflict`, :class:`CoolingDown`, ...) so
the trigger can say exactly why.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Callable

from shared.partner_center import (
    AuthenticationError,
    BadRequestError,
    CustomerNotFoundError,
    DeadlineExceeded,
    ForbiddenError,
    MalformedResponseError,
    ThrottledError,
    TransientError,
)
from shared.settings import Account, Settings
from shared.store import (
    EXCLUDE,
    INCLUDE,
    STATUS_ACTIVE,
    STATUS_EXCLUDED,
    APPROVED,
    APPROVING,
    PENDING,
    ChangeEntry,
    ConcurrencyConflict,
    HeldEndingDecided,
    OrganizationWrite,
    StoreError,
    next_version,
    organization_state,
)

from shared.sync.change_log import settle_change_log_or_say_why
from shared.sync.engine import AccountSync, RunResult
from shared.sync.stores import SyncStores

log = logging.getLogger(__name__)

SYNC_NOW_MODES = ("incremental", "full")


class UnknownAccount(LookupError):
    """No Partner Center account with this id is configured."""


class UnknownOrganization(LookupError):
    """The sync has no organization for this customer in this account."""


class UnknownCustomer(LookupError):
    """Partner Center does not know this customer (for this partner)."""


class UnknownHeldEnding(LookupError):
    """No held ending with this id in this account."""


class ActionConflict(Exception):
    """The action does not fit the current state (already decided, changed meanwhile, run active)."""


@dataclass
class CoolingDown(Exception):
    """"Sync now" was accepted too recently; try again in ``retry_after_seconds``."""

    retry_after_seconds: int

    def __str__(self) -> str:
        return f"a sync of this account was requested recently; try again in {self.retry_after_seconds} s"


@dataclass
class OnDemandLimited(Exception):
    """The account's on-demand syncs of one customer used up this window (``SYNC_CUSTOMER_LIMIT_PER_MINUTE``)."""

    limit: int
    retry_after_seconds: int

    def __str__(self) -> str:
        return (f"this account synced {self.limit} customers on demand this minute, its limit "
                f"(SYNC_CUSTOMER_LIMIT_PER_MINUTE); try again in {self.retry_after_seconds} s")


class RunFailed(Exception):
    """The run behind an action failed for a reason other than Partner Center (the run log has it)."""


@dataclass
class PartnerCenterUnavailable(Exception):
    """Partner Center failed the call: ``temporary`` for outages and throttling (try again)."""

    detail: str
    temporary: bool

    def __str__(self) -> str:
        return self.detail


def configured_account(settings: Settings, account_id: str) -> Account:
    """The configured account, or :class:`UnknownAccount`."""
    for account in settings.accounts:
        if account.id == account_id:
            return account
    raise UnknownAccount(f"no Partner Center account {account_id!r} is configured")


def sync_now_cooldown(settings: Settings) -> timedelta:
    """The cool-down between two "sync now" requests of one account (``SYNC_NOW_COOLDOWN_SECONDS``)."""
    return timedelta(seconds=settings.sync_now_cooldown_seconds)


def request_sync_now(stores: SyncStores, account_id: str, cooldown: timedelta,
                     start: Callable[[datetime], object], now: datetime | None = None,
                     *, by: str = "") -> tuple[datetime, object]:
    """Accept "sync now" for an account unless one was accepted within ``cooldown``.

    Calls ``start(now)`` to hand the work on (the trigger queues a sync unit), then records the
    request and who made it (``by``; the cool-down lives in SyncState, so it holds across
    instances); returns the moment
    and what ``start`` returned. Raises :class:`CoolingDown`. A ``start`` that fails records
    nothing, so the caller may try again at once. Two requests racing past the check both queue
    a unit; the account lease lets only one of them sync.
    """
    now = now or datetime.now(timezone.utc)
    last = stores.state.last_manual_request(account_id)
    if last is not None and now - last < cooldown:
        remaining = (last + cooldown - now).total_seconds()
        raise CoolingDown(max(1, math.ceil(remaining)))
    started = start(now)
    stores.state.record_manual_request(account_id, now, by=by)
    return now, started


# The on-demand window: per minute, like the Partner Center budget it protects.
ON_DEMAND_WINDOW_SECONDS = 60


def take_on_demand_sync(stores: SyncStores, account_id: str, per_minute: int, now: datetime | None = None) -> None:
    """Count one on-demand sync of a customer against the account's limit; :class:`OnDemandLimited`
    beyond it. The count lives in SyncState (one read, one write), so it holds across instances."""
    try:
        wait = stores.state.take_on_demand(account_id, per_minute, ON_DEMAND_WINDOW_SECONDS, now)
    except ConcurrencyConflict as exc:
        raise ActionConflict(str(exc)) from exc
    if wait:
        raise OnDemandLimited(per_minute, wait)


def sync_customer(sync: AccountSync, tenant_id: str) -> tuple[RunResult, dict]:
    """On-demand sync of one customer; returns the run and the stored organization.

    Raises :class:`UnknownCustomer` when Partner Center does not know the customer (or the
    relationship ended before the sync ever stored it), :class:`PartnerCenterUnavailable` when
    Partner Center failed, :class:`RunFailed` otherwise (Table Storage, most likely).
    """
    result, organization = sync.customer(tenant_id)
    if result.outcome == "failed":
        raise _run_failure(result)
    if organization is None:
        raise UnknownCustomer(f"Partner Center has no relationship with customer {tenant_id} for this account")
    return result, organization


def exclude_organization(stores: SyncStores, account_id: str, tenant_id: str, *, by: str = "") -> tuple[dict, bool]:
    """Take an organization out of sync (docs/http-api.md): it is kept as it is and never overwritten.

    Returns the organization and whether anything changed (excluding twice changes nothing).
    """
    return _set_exclusion(stores, account_id, tenant_id, EXCLUDE, by)


def include_organization(stores: SyncStores, account_id: str, tenant_id: str, *, by: str = "") -> tuple[dict, bool]:
    """Put an excluded organization back in sync: active again, refreshed by the next reconciliation.

    Including an active organization changes nothing; one whose relationship ended cannot be
    included (:class:`ActionConflict`): only Partner Center can bring it back.
    """
    return _set_exclusion(stores, account_id, tenant_id, INCLUDE, by)


def approve_held_ending(stores: SyncStores, sync_for: Callable[[], AccountSync], account_id: str, held_id: str,
                 *, by: str = "") -> RunResult:
    """Approve a held ending: the organizations Partner Center confirms gone are ended now, in a
    run. Approving again resumes an approval that stopped midway, or returns a finished one."""
    _pending_held(stores, account_id, held_id, also=(APPROVING, APPROVED))
    result = sync_for().approve_held(held_id, by=by)
    if result.outcome == "skipped":
        raise ActionConflict("another run of this account is in progress; approve again when it has finished")
    if result.outcome == "failed":
        raise _run_failure(result)
    return result


def reject_held_ending(stores: SyncStores, account_id: str, held_id: str, *, by: str = "") -> None:
    """Reject a held ending: those organizations stay as they are."""
    _pending_held(stores, account_id, held_id)
    try:
        stores.held.reject(account_id, held_id, by=by)
    except HeldEndingDecided as exc:
        raise ActionConflict(str(exc)) from exc


def _pending_held(stores: SyncStores, account_id: str, held_id: str, also: tuple[str, ...] = ()) -> None:
    held = stores.held.get(account_id, held_id)
    if held is None:
        raise UnknownHeldEnding(f"no held ending {held_id!r} for account {account_id!r}")
    if held.status != PENDING and held.status not in also:
        raise ActionConflict(f"held ending {held_id} is already {held.status}")


def _set_exclusion(stores: SyncStores, account_id: str, tenant_id: str, kind: str, by: str) -> tuple[dict, bool]:
    stored = stores.organizations.get(account_id, tenant_id)
    if stored is None:
        raise UnknownOrganization(f"account {account_id!r} has no organization for customer {tenant_id}")
    status = stored.get("Status")
    wanted = STATUS_EXCLUDED if kind == EXCLUDE else STATUS_ACTIVE
    if status == wanted:
        return stored, False
    if kind == INCLUDE and status != STATUS_EXCLUDED:
        raise ActionConflict(f"organization {tenant_id} is {status}, not excluded: only Partner Center can bring it back")
    # Operator actions are runs of their own, so the change log can say which one changed what.
    record = stores.runs.start(account_id, kind, by=by)
    at = record.started_at
    # Logged just before the write, as every change is (shared.sync.writes); taken back if it fails.
    previous = organization_state(stored)
    stores.changes.record(account_id, record.run_id, [
        ChangeEntry(tenant_id, kind, at, {"Status": (status, wanted)}, by=by, version=next_version(previous)),
    ])
    try:
        # ETag-guarded: a sync that wrote the row since we read it makes this a conflict, not a lost write.
        stats = stores.organizations.apply(account_id, [OrganizationWrite(tenant_id, kind, at, previous=previous)])
    except StoreError as exc:
        settle_change_log_or_say_why(stores, account_id, record.run_id, since=at, tenant_ids=[tenant_id])
        stores.runs.finish(record, "failed", {}, api_calls=0, throttled_calls=0, error=str(exc))
        raise
    if stats.conflicts:
        stores.changes.forget(account_id, record.run_id, [tenant_id])
        stores.runs.finish(record, "failed", {}, api_calls=0, throttled_calls=0,
                           error=f"organization {tenant_id} changed meanwhile")
        raise ActionConflict(f"organization {tenant_id} changed meanwhile; read it and try again")
    stores.runs.finish(record, "succeeded", {"updated": 1}, api_calls=0, throttled_calls=0)
    log.info("account %s: organization %s %sd by %s", account_id, tenant_id, kind, by or "an operator")
    return stores.organizations.get(account_id, tenant_id), True


_TEMPORARY = (TransientError, ThrottledError, DeadlineExceeded)
_REFUSED = (AuthenticationError, ForbiddenError, BadRequestError, MalformedResponseError)


def _run_failure(result: RunResult) -> Exception:
    failure = result.failure
    if isinstance(failure, CustomerNotFoundError):
        return UnknownCustomer(f"Partner Center does not know this customer: {result.error}")
    if isinstance(failure, HeldEndingDecided):
        return ActionConflict(result.error)
    if isinstance(failure, _TEMPORARY):
        return PartnerCenterUnavailable(f"run {result.run_id}: {result.error}", temporary=True)
    if isinstance(failure, _REFUSED):
        return PartnerCenterUnavailable(f"run {result.run_id}: {result.error}", temporary=False)
    return RunFailed(f"run {result.run_id} failed: {result.error}")