"""Run plumbing: options, outcomes and counts, the invocation's time budget, the account's lease
and its heartbeat, and the run log record every run leaves.

A run is one sync of one account in one invocation. Everything it does, including waiting for
another run's lease, happens before its :class:`Deadline` ends; while it works, a heartbeat
keeps its lease alive, and it checks the lease before every write, so a run that lost its lease
(its instance was frozen past the lease) stops before it can overwrite a successor's work.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from shared.partner_center import RelationshipEndedError
from shared.partner_center.models import is_known_relationship_kind, is_synced_kind
from shared.store import Lease, LeaseLost, RunRecord, SyncState
from shared.store.runs import RunOutcome
from shared.store.state import RUN_LEASE, WALK_LEASE

from .change_log import settle_change_log

log = logging.getLogger(__name__)


class SyncParts(Protocol):
    """What a run takes from its account's sync (:class:`shared.sync.engine.AccountSync`)."""

    account_id: str
    stores: object  # SyncStores
    client: object  # PartnerCenterClient
    options: "SyncOptions"

    def clock(self) -> datetime: ...

FULL = "full"
INCREMENTAL = "incremental"
CUSTOMER = "customer"
HELD = "held_approval"
# The lease each exclusive mode takes: a walk and an incremental run of one account may run side by
# side, never two of one kind. An on-demand customer sync takes none (its writes are ETag-guarded).
LEASE_OF_MODE = {FULL: WALK_LEASE, INCREMENTAL: RUN_LEASE, HELD: RUN_LEASE}
EXCLUSIVE_MODES = tuple(LEASE_OF_MODE)
# A non-exclusive run still "running" after this long died with its process (an HTTP invocation
# is cut off at functionTimeout, 10 minutes at most here).
_STALE_UNLEASED_RUN = timedelta(minutes=15)


@dataclass
class SyncOptions:
    page_size: int = 500
    concurrency: int = 8
    time_budget_seconds: float = 480.0
    audit_overlap: timedelta = timedelta(minutes=60)
    deletion_guard_percent: float = 10.0
    deletion_guard_minimum: int = 20
    # Short, and renewed by a heartbeat: a crashed run's account is free again within a minute.
    lease_seconds: float = 60.0
    # The default schedules fire the nightly reconciliation and an incremental run at the same
    # second: the reconciliation waits for the short run's lease instead of missing a night.
    full_lease_wait_seconds: float = 120.0
    # The incremental timer's interval: a walk continued inside an incremental invocation stops in
    # time for the next tick (a timer never overlaps itself, so a long invocation delays the next).
    incremental_interval_seconds: float = 300.0
    # Which relationshipToPartner kinds become organizations (PARTNER_CENTER_RELATIONSHIP_KINDS).
    relationship_kinds: frozenset[str] = frozenset({"reseller"})
    # Instances' clocks differ a little (Azure keeps them within milliseconds by NTP): a row written
    # this close before a walk began counts as written during it, never the walk's to end.
    clock_skew: timedelta = timedelta(seconds=1)


@dataclass(frozen=True)
class Deadline:
    """An invocation's deadline (``SYNC_TIME_BUDGET_SECONDS`` from its start): a ``time.monotonic()``
    moment every run of the invocation shares; the request budget is another thing (docs/glossary.md)."""

    at: float

    @classmethod
    def starting_now(cls, seconds: float) -> "Deadline":
        return cls(time.monotonic() + seconds)

    def left(self) -> float:
        return self.at - time.monotonic()


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
    outcome: RunOutcome
    counts: RunCounts = field(default_factory=RunCounts)
    api_calls: int = 0
    throttled_calls: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    error: str = ""
    # What an operator should know of a run that did not fail (a walk restarted from page 1, ...).
    notes: list[str] = field(default_factory=list)
    # The exception that ended a failed run, for callers that answer by its type (not stored).
    failure: BaseException | None = field(default=None, repr=False, compare=False)
    transactions: int = 0
    entities_written: int = 0

    def as_dict(self) -> dict:
        return {
            "account": self.account_id,
            "mode": self.mode,
            "runId": self.run_id,
            "outcome": str(self.outcome),
            "counts": self.counts.as_dict(),
            "apiCalls": self.api_calls,
            "throttledCalls": self.throttled_calls,
            "transactions": self.transactions,
            "entitiesWritten": self.entities_written,
            "startedAt": self.started_at.isoformat() if self.started_at else None,
            "endedAt": self.ended_at.isoformat() if self.ended_at else None,
            "error": self.error,
            "notes": list(self.notes),
        }


class InvocationFailed(RuntimeError):
    """A run behind a trigger failed: raised out of the trigger so the Functions host records the
    invocation as failed (the failed-invocation alert fires) and, for a queue trigger, retries the
    message, then moves it to the poison queue. ``results``: the runs, when a timer ran several."""

    def __init__(self, message: str, results: list | None = None) -> None:
        super().__init__(message)
        self.results = results or []


class LeaseKeeper:
    """Holds one account's lease for a run: a heartbeat thread renews it every few seconds.

    :meth:`check` raises :class:`LeaseLost` once the lease was taken over, or once so long has
    passed without a successful renewal that it may have expired: the run must not write then.
    """

    def __init__(self, state: SyncState, lease: Lease, seconds: float) -> None:
        self._state = state
        self._seconds = seconds
        self._interval = max(0.5, min(10.0, seconds / 6))
        self._lock = threading.Lock()
        self._lease = lease
        self._renewed_at = time.monotonic()
        self._valid_until = self._renewed_at + seconds
        self._lost: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{lease.account_id}", daemon=True)
        self._thread.start()

    def check(self) -> None:
        """Raise :class:`LeaseLost` unless the lease is still ours, proven by renewing it on the spot
        (an ETag-guarded write): a write never rests on a stale belief. Called before each page's
        writes and checkpoint, so it costs a write or two per page of up to 500 customers."""
        with self._lock:
            if self._lost is None:
                self._renew_locked()
            if self._lost is None and time.monotonic() > self._valid_until - self._interval:
                self._lost = "the lease could not be renewed in time"
            if self._lost is not None:
                raise LeaseLost(f"account {self._lease.account_id}: {self._lost}; the run stops before writing")

    def release(self) -> None:
        """Stop the heartbeat and give the lease back (unless it was lost)."""
        self._stop.set()
        self._thread.join(timeout=self._interval + 30)
        with self._lock:
            lost, lease = self._lost, self._lease
        if lost is None:
            try:
                self._state.release(lease)
            except Exception:  # an unreleased lease expires by itself within lease_seconds
                log.warning("account %s: the lease could not be released; it expires in %.0f s",
                            lease.account_id, self._seconds, exc_info=True)

    def _beat(self) -> None:
        while not self._stop.wait(self._interval):
            with self._lock:
                if self._lost is not None:
                    return
                self._renew_locked()

    def _renew_locked(self) -> None:
        started = time.monotonic()
        try:
            self._lease = self._state.renew(self._lease, self._seconds)
        except LeaseLost as exc:
            self._lost = str(exc)
            return
        except Exception:  # storage hiccup: try again next beat; check() stops writes if it lasts
            log.warning("account %s: lease renewal failed; retrying", self._lease.account_id, exc_info=True)
            return
        self._renewed_at = started
        self._valid_until = started + self._seconds


def acquire_lease(sync: "SyncParts", mode: str, deadline: Deadline, wait_seconds: float) -> Lease | None:
    """Take the mode's lease of the account, waiting at most ``wait_seconds`` and never past the deadline."""
    owner = uuid.uuid4().hex
    give_up = min(time.monotonic() + wait_seconds, deadline.at)
    while True:
        lease = sync.stores.state.acquire(sync.account_id, owner, sync.options.lease_seconds, LEASE_OF_MODE[mode])
        if lease is not None or time.monotonic() >= give_up:
            return lease
        time.sleep(min(1.0, max(0.0, give_up - time.monotonic())))


def close_abandoned_runs(sync: "SyncParts", mode: str, now: datetime) -> int:
    """Runs left ``running`` by a crashed process are closed as abandoned. Call holding the mode's
    lease: no other run under that lease can be alive then."""
    closed = 0
    lease = LEASE_OF_MODE[mode]
    for record in sync.stores.runs.running(sync.account_id):
        if LEASE_OF_MODE.get(record.mode) == lease or (
                record.mode not in LEASE_OF_MODE and now - record.started_at > _STALE_UNLEASED_RUN):
            # Its last entries may be for writes that never landed: take those back first.
            settle_change_log(sync.stores, sync.account_id, record.run_id, since=record.started_at)
            sync.stores.runs.abandon(record, "the run never finished: its process stopped (crash, scale-in or "
                                             "recycling) and its lease expired; the next run carried on")
            closed += 1
    if closed:
        log.warning("account %s: %d run(s) left running by a stopped process closed as abandoned",
                    sync.account_id, closed)
    return closed


class Run:
    """One run in progress: its result, its lease, its time budget, and its account's parts."""

    def __init__(self, sync: "SyncParts", result: RunResult, record: RunRecord, deadline: Deadline,
                 keeper: LeaseKeeper | None) -> None:
        self.sync = sync
        self.result = result
        self.record = record
        self.deadline = deadline
        self.keeper = keeper
        # Organizations whose change-log entry is written but whose write failed midway: settled at the end.
        self.unsettled: set[str] = set()
        self._slowest_page = 0.0
        self._page_started = time.monotonic()
        self._unknown_kinds: set[str] = set()

    @property
    def account_id(self) -> str:
        return self.sync.account_id

    @property
    def stores(self):
        return self.sync.stores

    @property
    def client(self):
        return self.sync.client

    @property
    def options(self) -> SyncOptions:
        return self.sync.options

    def now(self) -> datetime:
        return self.sync.clock()

    def check_lease(self) -> None:
        """Raise :class:`LeaseLost` when the run no longer holds its lease; call before every write."""
        if self.keeper is not None:
            self.keeper.check()

    def pages_begin(self) -> None:
        """The run's setup (snapshots, lease, checkpoint) is done: what follows is timed as pages.
        Setup happens once a run; counted in the first page, it would stop a unit after one page."""
        self._page_started = time.monotonic()

    def near_deadline(self) -> bool:
        """True when another page might not fit in what is left of the time budget."""
        now = time.monotonic()
        self._slowest_page = max(self._slowest_page, now - self._page_started)
        self._page_started = now
        return self.deadline.left() < 2 * self._slowest_page + 5

    def note(self, text: str) -> None:
        self.result.notes.append(text)
        log.warning("account %s: %s", self.account_id, text)

    def synced_kind(self, customer) -> bool:
        """Whether the customer's relationship kind becomes an organization (a customer of another
        kind is as good as not listed: its organization ends through the guarded path). Unknown
        kinds are logged once per run and never synced."""
        if is_synced_kind(customer, self.options.relationship_kinds):
            return True
        kind = customer.relationship_kind
        if not is_known_relationship_kind(kind) and kind not in self._unknown_kinds:
            self._unknown_kinds.add(kind)
            log.warning("account %s: the customer list holds relationship kind %r, unknown to the sync; customers "
                        "of that kind are not synced", self.account_id, kind)
        return False


def describe(exc: BaseException) -> str:
    if isinstance(exc, RelationshipEndedError):
        return f"relationship ended (403 code 20002) {exc}"
    return f"{type(exc).__name__}: {exc}"
