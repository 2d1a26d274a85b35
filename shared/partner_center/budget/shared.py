"""This process's part in an account's budget shared through Table Storage: the ledger's rules,
booked in the row, with a bounded local window while storage is away and first in line within the process."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Callable

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableClient

from ..errors import DeadlineExceeded
from .lanes import LaneBudget
from .ledger import (BACKGROUND, FIRST, LANES, MIN_SLICE, SLICE_SECONDS, WINDOW_SECONDS, Lane, book_claim,
                     foreground_cap, interactive_reserve, lane_ceiling)
from .table import LedgerRow
from .window import SlidingWindow

log = logging.getLogger(__name__)

FIRST_IN_LINE_YIELD_SECONDS = 0.005  # how long other callers step back while a first-in-line one waits
CLAIM_ATTEMPTS = 8  # ETag conflicts in a row before the claim backs off
RETRY_STORAGE_SECONDS = 5.0  # while storage is down, how often to try it again


@dataclass
class BudgetStats:
    """What the budget cost: storage operations and ETag conflicts, claims, calls by how they were admitted."""

    storage_operations: int = 0
    conflicts: int = 0
    claims: int = 0
    shared_calls: int = 0
    fallback_calls: int = 0
    storage_failures: int = 0


class SharedRequestBudget:
    """This process's part in an account's storage-backed request budget; hand out :meth:`lane`.

    One per account and process (see :class:`RequestBudgets`); thread-safe. ``per_minute``
    is the whole service's budget for the account, for all instances together.
    """

    def __init__(
        self,
        table: TableClient,
        account_id: str,
        per_minute: int,
        *,
        interactive_reserve_percent: float = 10.0,
        interactive_max_percent: float = 50.0,
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
        self.account_id = account_id
        self.per_minute = per_minute
        self.reserve = interactive_reserve(per_minute, interactive_reserve_percent)
        self.interactive_reserve_percent = interactive_reserve_percent
        self.interactive_max_percent = interactive_max_percent
        self.foreground_cap = foreground_cap(per_minute, interactive_max_percent, self.reserve)
        self.fallback_instances = fallback_instances
        self.window = window
        self.slice_seconds = slice_seconds
        self.retry_storage_seconds = retry_storage_seconds
        self.owner = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.stats = BudgetStats()
        self.row = LedgerRow(table, account_id, per_minute, self.stats)
        self._clock = clock
        self._monotonic = monotonic
        sizes = {**MIN_SLICE, **(min_slice or {})}
        self._lanes = {name: Lane(name, sizes[name]) for name in LANES}
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
        self._made = SlidingWindow(window)  # every call of this process in the last window (fallback)
        self._fallback_unsettled: list[float] = []  # calls made while storage was down

    def lane(self, name: str) -> LaneBudget:
        """The budget as seen by one lane: ``"background"`` or ``"interactive"``."""
        if name not in self._views:
            raise ValueError(f"unknown lane {name!r}; use one of {', '.join(LANES)}")
        return self._views[name]

    def ceiling(self, lane: str) -> int:
        """The most calls any window may hold once this lane's slice is added, when nobody else waits:
        the whole budget, for either lane (the row says when less: :func:`.ledger.booking_limits`)."""
        return self.per_minute

    @property
    def using_fallback(self) -> bool:
        """True while storage is unavailable and the local share applies."""
        return self._storage_down_until > self._clock()

    def fallback_share(self, lane: str) -> int:
        """Calls per window this instance allows itself without storage: 1/instances of the lane's
        ceiling, the reserve left out of the background's (nobody's demand is known without the row)."""
        ceiling = lane_ceiling(lane, self.per_minute, self.reserve)
        return max(1, ceiling // max(self.fallback_instances, self._instances_seen))

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

    def _acquire(self, lane: Lane, deadline: float | None, first: bool = False) -> None:
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
                        lane.take(now)
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
                    elif lane.ask_at > now and not self._first_waiting[lane_name]:
                        ready_at = lane.ask_at  # the row said when its slice may start: ask again then
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

    def _could_call(self, lane: Lane, now: float) -> bool:
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
            raise self._no_room()
        self._condition.wait(min(wait, 1.0))

    def _no_room(self) -> DeadlineExceeded:
        return DeadlineExceeded(f"the shared request budget ({self.per_minute}/min for account {self.account_id}) "
                                "has no room before the run's time budget ends")

    def _record(self, lane: Lane, now: float) -> None:
        lane.recent.append(now)
        self._made.record(now)

    def _fallback_wait(self, lane_name: str, now: float) -> float:
        return self._made.next_free(now, self.fallback_share(lane_name)) - now

    # -- storage ---------------------------------------------------------------------------

    def _claim(self, lane: Lane, deadline: float | None) -> None:
        """Book the lane's next slice in the row (settling its last one); fall back if storage fails."""
        with self._condition:
            settled = list(lane.unsettled)
            fallback = list(self._fallback_unsettled)
            count = lane.slice_size(self._clock(), self.ceiling(lane.name), self._instances_seen)
            # A background claim made while a caller first in line waits is the foreground's (FIRST).
            label = FIRST if lane.name == BACKGROUND and self._first_waiting[BACKGROUND] else lane.name
            made_under = lane.label
        for attempt in range(CLAIM_ATTEMPTS):
            try:
                ledger, etag = self.row.read()
                now = self._clock()
                ledger.prune(now, self.window)
                ledger.settle(self.owner, lane.name, settled, self.window, made_under)
                ledger.settle(self.owner, lane.name, fallback, self.window, BACKGROUND)
                self._instances_seen = len(ledger.owners() | {self.owner})
                latest = None if deadline is None else now + (deadline - self._monotonic())
                booked = book_claim(ledger, self.owner, label, count, now=now, per_minute=self.per_minute,
                                    reserve=self.reserve, cap=self.foreground_cap,
                                    not_before=max(now, self._paused_until), window=self.window,
                                    duration=self.slice_seconds, latest=latest, smallest=lane.smallest(),
                                    paced=bool(self._lanes[BACKGROUND].spacing))
                if booked is None:
                    raise self._no_room()
                if not booked.count:  # nothing booked: the row stays as it was, the calls unsettled
                    with self._condition:
                        lane.open(booked)
                    return
                self.row.write(ledger, etag)
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
                lane.open(booked, ledger.paced_at)
                self._paused_until = max(self._paused_until, ledger.paused_until)
                self.stats.claims += 1
            return
        time.sleep(random.uniform(0.05, 0.2))  # many rivals at once: let them through, then try again

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
                ledger, etag = self.row.read()
                if ledger.paused_until >= until:
                    return
                ledger.paused_until = until
                ledger.prune(self._clock(), self.window)
                self.row.write(ledger, etag)
                return
            except (ResourceModifiedError, ResourceExistsError):
                self.stats.conflicts += 1
                time.sleep(random.uniform(0.0, 0.02 * (attempt + 1)))
            except AzureError as exc:
                self._storage_failed(exc)  # the pause still holds here; the others see their own 429s
                return
