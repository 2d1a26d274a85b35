"""One Partner Center request budget per account, shared by every process and instance through Table Storage.

Partner Center counts a partner tenant's requests together, whoever sends them, so a window kept
in one process lets N instances send N times the limit. Here every instance of an account books
its calls in one row of the ``RequestBudget`` table (PartitionKey = account id), with ETag
concurrency:

- An instance claims a **slice** of calls (sized to about two seconds of its own recent use, at
  least ``min_slice`` so a storage operation buys many calls) for a short validity
  (``slice_seconds``). The row holds the slice whole until its validity ends plus the window.
- At its next claim the instance replaces its old slice by what it really used: each call held
  until it leaves the sliding window (per-second buckets). So a crashed instance's unused slice
  frees itself, and a live one returns what it did not use at no extra cost.
- A claim never waits in a queue of rivals: it books the earliest moment at which its slice fits
  under the limit in every sliding window it can touch, possibly in the future, and sleeps until then.
- **Lanes.** The interactive lane (on-demand syncs, webhooks, "sync now") may use the whole
  budget; the background lane (timers, reconciliation) everything but a reserved share. The
  reserve is always there for interactive calls; the background may slow down for them, never
  the reverse.
- **Paced.** A paced lane (the background, in service) spreads its calls evenly, at most its
  ceiling per window, with a burst of about two seconds' worth. A sliding window alone admits the
  whole minute's calls in the first seconds of it: a walk's sixteen threads used the 405 calls of
  a real minute in about 2.5 s, and anything that came after waited the other 58 s.
- **First in line.** Within a process, a lane's calls go first to the runs someone is waiting on
  (the incremental sync, bringing in customers who just accepted), then to the rest (a
  reconciliation's walk, which has hours): a walk's sixteen fetch threads would otherwise take
  sixteen calls of every seventeen. Between instances the row's slices alternate instead.
- A 429 seen anywhere is stored as ``PausedUntil``: every instance books nothing before it, and
  each stops at its next claim, within about one slice (two seconds of its calls).
- **Storage unavailable**: each instance falls back to a local sliding window of
  ``1/instances`` of the budget (never unbounded), tries storage again every few seconds, and
  books the calls it made meanwhile when storage is back.

The lanes have the interface of :class:`shared.partner_center.RequestBudget` (``acquire(deadline)``,
``pause(seconds)``, ``per_minute``, ``first_in_line()``), so the Partner Center client does not change.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from shared.partner_center.errors import DeadlineExceeded
from shared.settings import Settings
from shared.store.tables import Tables

log = logging.getLogger(__name__)

# Partner Center's sliding minute, plus 1 s for the time between our send and its arrival and
# 1 s for clock differences between instances (each books in its own wall clock).
WINDOW_SECONDS = 62.0
SLICE_SECONDS = 10.0  # how long a claimed slice may be used
SLICE_TARGET_SECONDS = 2.0  # a slice is sized to this much of the lane's recent use...
MIN_SLICE = {"background": 30, "interactive": 5}  # ...and never smaller (storage ops per call)
LANES = ("background", "interactive")
ROW_KEY = "requests"
PACE_BURST_SECONDS = 2.0  # a paced lane may run this far ahead of its even pace
FIRST_IN_LINE_YIELD_SECONDS = 0.005  # how long other callers step back while a first-in-line one waits
CLAIM_ATTEMPTS = 8  # ETag conflicts in a row before the claim backs off
RETRY_STORAGE_SECONDS = 5.0  # while storage is down, how often to try it again
# Storage calls of the budget fail fast: a call waiting on the budget waits on them.
STORAGE_OPTIONS = {"retry_total": 0, "connection_timeout": 3, "read_timeout": 5}


@dataclass
class Slice:
    """An open claim in the row: ``count`` calls usable from ``start`` to ``end`` (wall clock)."""

    owner: str
    lane: str
    count: int
    start: float
    end: float


@dataclass
class Ledger:
    """The shared row: when Partner Center paused us, calls already made, and open slices."""

    paused_until: float = 0.0
    released: dict[int, int] = field(default_factory=dict)  # second a bucket leaves the window -> calls
    slices: list[Slice] = field(default_factory=list)
    etag: str | None = None

    @classmethod
    def from_entity(cls, entity: dict) -> "Ledger":
        released = {int(second): int(count) for second, count in json.loads(entity.get("Released") or "{}").items()}
        slices = [Slice(str(o), str(lane), int(n), float(s), float(e))
                  for o, lane, n, s, e in json.loads(entity.get("Slices") or "[]")]
        etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
        return cls(float(entity.get("PausedUntil") or 0.0), released, slices, etag)

    def to_entity(self, account_id: str, per_minute: int) -> dict:
        return {
            "PartitionKey": account_id,
            "RowKey": ROW_KEY,
            "PerMinute": per_minute,
            "PausedUntil": self.paused_until,
            "Released": json.dumps({str(k): v for k, v in sorted(self.released.items())}, separators=(",", ":")),
            "Slices": json.dumps([[s.owner, s.lane, s.count, round(s.start, 3), round(s.end, 3)] for s in self.slices],
                                 separators=(",", ":")),
        }

    def prune(self, now: float, window: float) -> None:
        """Forget what no longer counts in any window that ends after ``now``."""
        self.released = {second: n for second, n in self.released.items() if second > now}
        self.slices = [s for s in self.slices if s.end + window > now]

    def settle(self, owner: str, lane: str, calls: list[float], window: float) -> None:
        """Replace ``owner``'s open slice of ``lane`` by the calls it really made (each held one window)."""
        self.slices = [s for s in self.slices if not (s.owner == owner and s.lane == lane)]
        for at in calls:
            second = math.ceil(at + window)
            self.released[second] = self.released.get(second, 0) + 1

    def held_at(self, moment: float, window: float) -> int:
        """Calls that count in the sliding window ending at ``moment`` (booked slices counted whole)."""
        made = sum(n for second, n in self.released.items() if second > moment)
        return made + sum(s.count for s in self.slices if s.start <= moment < s.end + window)

    def peak(self, start: float, end: float, window: float) -> int:
        """The most calls held at any moment of [start, end)."""
        moments = [start] + [s.start for s in self.slices if start < s.start < end]
        return max(self.held_at(moment, window) for moment in moments)

    def earliest_start(self, count: int, ceiling: int, not_before: float, window: float,
                       duration: float) -> float | None:
        """The first moment from ``not_before`` at which a slice of ``count`` calls used for
        ``duration`` keeps every window under ``ceiling``; ``None`` if it never fits."""
        if count > ceiling:
            return None
        frees = {float(second) for second in self.released} | {s.end + window for s in self.slices}
        for start in sorted({not_before} | {moment for moment in frees if moment > not_before}):
            if self.peak(start, start + duration + window, window) + count <= ceiling:
                return start
        return None

    def room(self, start: float, ceiling: int, window: float, duration: float) -> int:
        """How many calls a slice starting at ``start`` may have."""
        return max(0, ceiling - self.peak(start, start + duration + window, window))

    def owners(self) -> set[str]:
        return {s.owner for s in self.slices}


@dataclass
class BudgetStats:
    """What the budget cost: storage operations and ETag conflicts, claims, calls by how they were admitted."""

    storage_operations: int = 0
    conflicts: int = 0
    claims: int = 0
    shared_calls: int = 0
    fallback_calls: int = 0
    storage_failures: int = 0


class _LaneState:
    def __init__(self, name: str, min_slice: int) -> None:
        self.name = name
        self.min_slice = min_slice
        self.count = self.remaining = 0
        self.start = self.end = 0.0
        self.unsettled: list[float] = []  # calls under the lane's open slice, not yet settled in the row
        self.recent: deque[float] = deque()  # the lane's calls in the last SLICE_TARGET_SECONDS
        self.spacing = 0.0  # seconds between two calls of a paced lane (0: not paced)
        self.paced_at = 0.0  # when the lane's next call is due at its even pace (never moves unpaced)

    def pace(self, per_window: int, window: float) -> None:
        self.spacing = window / per_window

    def due(self) -> float:
        """The moment from which the lane's pace lets its next call start (its burst allowance included)."""
        return self.paced_at - PACE_BURST_SECONDS

    def paced_call(self, now: float) -> None:
        if self.spacing:
            self.paced_at = max(self.paced_at, now) + self.spacing

    def usable(self, now: float) -> bool:
        return self.remaining > 0 and self.start <= now < self.end

    def booked_ahead(self, now: float) -> bool:
        return self.remaining > 0 and now < self.start


class SharedRequestBudget:
    """This process's part in an account's storage-backed request budget; hand out :meth:`lane`.

    One per account and process (see :func:`shared_request_budget`); thread-safe. ``per_minute``
    is the whole service's budget for the account, for all instances together.
    """

    def __init__(
        self,
        table: TableClient,
        account_id: str,
        per_minute: int,
        *,
        interactive_reserve_percent: float = 10.0,
        fallback_instances: int = 4,
        window: float = WINDOW_SECONDS,
        slice_seconds: float = SLICE_SECONDS,
        min_slice: dict[str, int] | None = None,
        paced: tuple[str, ...] = (),
        retry_storage_seconds: float = RETRY_STORAGE_SECONDS,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        if fallback_instances < 1:
            raise ValueError("fallback_instances must be at least 1")
        self.table = table
        self.account_id = account_id
        self.per_minute = per_minute
        self.reserve = interactive_reserve(per_minute, interactive_reserve_percent)
        self.interactive_reserve_percent = interactive_reserve_percent
        self.fallback_instances = fallback_instances
        self.window = window
        self.slice_seconds = slice_seconds
        self.retry_storage_seconds = retry_storage_seconds
        self.owner = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.stats = BudgetStats()
        self._clock = clock
        self._monotonic = monotonic
        sizes = {**MIN_SLICE, **(min_slice or {})}
        self._lanes = {name: _LaneState(name, sizes[name]) for name in LANES}
        for name in paced:
            self._lanes[name].pace(self.ceiling(name), window)
        self._views = {name: LaneBudget(self, name) for name in LANES}
        self._condition = threading.Condition()
        self._first_waiting = {name: 0 for name in LANES}  # callers first in line, waiting for a call
        self._claiming = False
        self._paused_until = 0.0
        self._published_pause = 0.0
        self._storage_down_until = 0.0
        self._instances_seen = 1
        self._made: deque[float] = deque()  # every call of this process in the last window (fallback)
        self._fallback_unsettled: list[float] = []  # calls made while storage was down

    def lane(self, name: str) -> "LaneBudget":
        """The budget as seen by one lane: ``"background"`` or ``"interactive"``."""
        if name not in self._views:
            raise ValueError(f"unknown lane {name!r}; use one of {', '.join(LANES)}")
        return self._views[name]

    def ceiling(self, lane: str) -> int:
        """The most calls any window may hold once this lane's slice is added."""
        return self.per_minute if lane == "interactive" else self.per_minute - self.reserve

    @property
    def using_fallback(self) -> bool:
        """True while storage is unavailable and the local share applies."""
        return self._storage_down_until > self._clock()

    def fallback_share(self, lane: str) -> int:
        """Calls per window this instance allows itself without storage: 1/instances of the lane's ceiling."""
        return max(1, self.ceiling(lane) // max(self.fallback_instances, self._instances_seen))

    # -- acquire ---------------------------------------------------------------------------

    def acquire(self, lane_name: str, deadline: float | None = None, *, first: bool = False) -> None:
        """Block until a call of ``lane_name`` may start; DeadlineExceeded if that is past ``deadline``.

        A call ``first`` in line gets the lane's next call before any other of this process.
        """
        lane = self._lanes[lane_name]
        if not first:
            return self._acquire(lane, deadline)
        with self._condition:
            self._first_waiting[lane_name] += 1
        try:
            return self._acquire(lane, deadline, first=True)
        finally:
            with self._condition:
                self._first_waiting[lane_name] -= 1

    def _acquire(self, lane: _LaneState, deadline: float | None, first: bool = False) -> None:
        lane_name = lane.name
        while True:
            claim = False
            with self._condition:
                now = self._clock()
                # A 429's pause, and the lane's even pace: nothing starts before either.
                ready_at: float | None = max(self._paused_until, lane.due())
                if ready_at <= now:
                    if not first and self._first_waiting[lane_name] and self._could_call(lane, now):
                        # Someone first in line waits for this lane: let it take the next call.
                        self._condition.wait(FIRST_IN_LINE_YIELD_SECONDS)
                        continue
                    if lane.usable(now):
                        lane.remaining -= 1
                        lane.unsettled.append(now)
                        lane.paced_call(now)
                        self._record(lane, now)
                        self.stats.shared_calls += 1
                        return
                    if lane.booked_ahead(now):
                        ready_at = lane.start
                    elif self._storage_down_until > now:
                        wait = self._fallback_wait(lane_name, now)
                        if wait <= 0:
                            self._fallback_unsettled.append(now)
                            lane.paced_call(now)
                            self._record(lane, now)
                            self.stats.fallback_calls += 1
                            return
                        ready_at = min(now + wait, self._storage_down_until)  # storage may be back first
                    elif not self._claiming:
                        self._claiming = claim = True
                    else:
                        ready_at = None  # another thread is claiming: wait for it
                if not claim:
                    self._wait(ready_at, now, deadline)
                    continue
            try:
                self._claim(lane, deadline)
            finally:
                with self._condition:
                    self._claiming = False
                    self._condition.notify_all()

    def _could_call(self, lane: _LaneState, now: float) -> bool:
        """Whether a call of ``lane`` could start right now (from its slice, or the fallback share),
        its pace and any pause already allowing it."""
        if lane.usable(now):
            return True
        return self._storage_down_until > now and self._fallback_wait(lane.name, now) <= 0

    def _wait(self, ready_at: float | None, now: float, deadline: float | None) -> None:
        """Sleep (holding the condition) until ``ready_at`` or a notification."""
        if ready_at is None:
            self._condition.wait(0.5)
            return
        wait = ready_at - now
        if deadline is not None and self._monotonic() + wait > deadline:
            raise DeadlineExceeded(
                f"the shared request budget ({self.per_minute}/min for account {self.account_id}) "
                "has no room before the run's time budget ends")
        self._condition.wait(min(wait, 1.0))

    def _record(self, lane: _LaneState, now: float) -> None:
        lane.recent.append(now)
        self._made.append(now)
        while self._made and self._made[0] <= now - self.window:
            self._made.popleft()

    def _fallback_wait(self, lane_name: str, now: float) -> float:
        while self._made and self._made[0] <= now - self.window:
            self._made.popleft()
        share = self.fallback_share(lane_name)
        if len(self._made) < share:
            return 0.0
        return self._made[len(self._made) - share] + self.window - now

    def _slice_size(self, lane: _LaneState, now: float) -> int:
        while lane.recent and lane.recent[0] <= now - SLICE_TARGET_SECONDS:
            lane.recent.popleft()
        ceiling = self.ceiling(lane.name)
        largest = max(lane.min_slice, ceiling // (2 * max(1, self._instances_seen)))
        return max(1, min(ceiling, largest, max(lane.min_slice, math.ceil(len(lane.recent) * 1.25))))

    # -- storage ---------------------------------------------------------------------------

    def _claim(self, lane: _LaneState, deadline: float | None) -> None:
        """Book the lane's next slice in the row (settling its last one); fall back if storage fails."""
        with self._condition:
            settled = list(lane.unsettled)
            fallback = list(self._fallback_unsettled)
            count = self._slice_size(lane, self._clock())
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                ledger = self._read()
                now = self._clock()
                ledger.prune(now, self.window)
                ledger.settle(self.owner, lane.name, settled + fallback, self.window)
                self._instances_seen = len(ledger.owners() | {self.owner})
                not_before = max(now, ledger.paused_until, self._paused_until)
                ceiling = self.ceiling(lane.name)
                start = ledger.earliest_start(count, ceiling, not_before, self.window, self.slice_seconds)
                latest = None if deadline is None else now + (deadline - self._monotonic())
                if start is None or (latest is not None and start > latest):
                    start = ledger.earliest_start(1, ceiling, not_before, self.window, self.slice_seconds)
                    if start is None or (latest is not None and start > latest):
                        raise DeadlineExceeded(
                            f"the shared request budget ({self.per_minute}/min for account {self.account_id}) "
                            "has no room before the run's time budget ends")
                    count = min(count, ledger.room(start, ceiling, self.window, self.slice_seconds))
                ledger.slices.append(Slice(self.owner, lane.name, count, start, start + self.slice_seconds))
                self._write(ledger)
            except (ResourceModifiedError, ResourceExistsError):
                self.stats.conflicts += 1
                time.sleep(random.uniform(0.0, 0.02 * (attempt + 1)))  # rivals apart, briefly
                continue
            except AzureError as exc:
                self._storage_failed(exc)
                return
            with self._condition:
                if self._storage_down_until:
                    log.info("request budget of account %s: storage is back, using the shared budget again",
                             self.account_id)
                    self._storage_down_until = 0.0
                del lane.unsettled[:len(settled)]
                del self._fallback_unsettled[:len(fallback)]
                lane.count = lane.remaining = count
                lane.start, lane.end = start, start + self.slice_seconds
                self._paused_until = max(self._paused_until, ledger.paused_until)
                self.stats.claims += 1
            return
        time.sleep(random.uniform(0.05, 0.2))  # many rivals at once: let them through, then try again

    def _read(self) -> Ledger:
        self.stats.storage_operations += 1
        try:
            return Ledger.from_entity(self.table.get_entity(self.account_id, ROW_KEY, **STORAGE_OPTIONS))
        except ResourceNotFoundError as exc:
            if getattr(exc, "error_code", None) == "TableNotFound":
                self._create_table()
                return self._read()
            return Ledger()

    def _write(self, ledger: Ledger) -> None:
        self.stats.storage_operations += 1
        entity = ledger.to_entity(self.account_id, self.per_minute)
        if ledger.etag is None:
            self.table.create_entity(entity, **STORAGE_OPTIONS)
        else:
            self.table.update_entity(entity, mode=UpdateMode.REPLACE, etag=ledger.etag,
                                     match_condition=MatchConditions.IfNotModified, **STORAGE_OPTIONS)

    def _create_table(self) -> None:
        self.stats.storage_operations += 1
        try:
            self.table.create_table(**STORAGE_OPTIONS)
        except ResourceExistsError:
            pass

    def _storage_failed(self, exc: Exception) -> None:
        with self._condition:
            first = self._storage_down_until == 0.0
            self._storage_down_until = self._clock() + self.retry_storage_seconds
            self.stats.storage_failures += 1
            self._condition.notify_all()
        if first:
            log.warning("request budget of account %s: storage unavailable (%s); this instance falls back to "
                        "%d calls/min of its own until it is back", self.account_id, type(exc).__name__,
                        self.fallback_share("background"))

    # -- pause -----------------------------------------------------------------------------

    def pause(self, seconds: float) -> None:
        """Partner Center said 429: hold every lane here at once, and every instance through the row."""
        until = self._clock() + max(0.0, seconds)
        with self._condition:
            self._paused_until = max(self._paused_until, until)
            if until <= self._published_pause + 0.5:
                return  # another thread of this process already told the others
            if self._storage_down_until > self._clock():
                return  # no storage to tell them through: the others will see their own 429s
            self._published_pause = until
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                ledger = self._read()
                if ledger.paused_until >= until:
                    return
                ledger.paused_until = until
                ledger.prune(self._clock(), self.window)
                self._write(ledger)
                return
            except (ResourceModifiedError, ResourceExistsError):
                self.stats.conflicts += 1
                time.sleep(random.uniform(0.0, 0.02 * (attempt + 1)))
            except AzureError as exc:
                self._storage_failed(exc)  # the pause still holds here; the others see their own 429s
                return


class LaneBudget:
    """One lane of a :class:`SharedRequestBudget`, with the interface the Partner Center client uses."""

    def __init__(self, budget: SharedRequestBudget, name: str, *, first: bool = False) -> None:
        self.budget = budget
        self.name = name
        self.first = first

    @property
    def per_minute(self) -> int:
        return self.budget.per_minute

    def acquire(self, deadline: float | None = None) -> None:
        """Block until a request may start; raise DeadlineExceeded if that is past ``deadline``."""
        self.budget.acquire(self.name, deadline, first=self.first)

    def first_in_line(self) -> "LaneBudget":
        """The same lane, its calls going before this process's other calls on it."""
        return LaneBudget(self.budget, self.name, first=True)

    def pause(self, seconds: float) -> None:
        """Hold every lane of every instance of the account back for ``seconds`` (a 429)."""
        self.budget.pause(seconds)

    def lane(self, name: str) -> "LaneBudget":
        """Another lane of the same budget."""
        return self.budget.lane(name)


def interactive_reserve(per_minute: int, percent: float) -> int:
    """Calls per window only the interactive lane may use (the background always keeps at least one)."""
    reserve = math.ceil(per_minute * percent / 100.0)
    return max(0, min(reserve, per_minute - 1))


_budgets: dict[tuple, SharedRequestBudget] = {}
_budgets_lock = threading.Lock()


def shared_request_budget(tables: Tables, account_id: str, settings: Settings, lane: str = "background") -> LaneBudget:
    """The account's request budget, shared by every process and instance, as one ``lane``.

    One :class:`SharedRequestBudget` per account, storage and process, so every run and thread
    of the process books through the same slices.
    """
    table_name = tables.names.request_budget
    key = (tables.service.url, table_name, account_id)
    wanted = (settings.max_requests_per_minute, settings.interactive_reserve_percent, settings.budget_fallback_instances)
    with _budgets_lock:
        budget = _budgets.get(key)
        if budget is None or (budget.per_minute, budget.interactive_reserve_percent,
                              budget.fallback_instances) != wanted:
            budget = _budgets[key] = SharedRequestBudget(
                tables.client(table_name), account_id, settings.max_requests_per_minute,
                interactive_reserve_percent=settings.interactive_reserve_percent,
                fallback_instances=settings.budget_fallback_instances,
                paced=("background",),  # timers and walks have time; the interactive lane does not
            )
    return budget.lane(lane)


def forget_shared_budgets() -> None:
    """Drop this process's budgets (tests)."""
    with _budgets_lock:
        _budgets.clear()
