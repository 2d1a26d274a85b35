"""The shared budget's booking rules as plain data and arithmetic: no storage, no clock, no threads,
so every rule can be checked on made-up times."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

# Partner Center's sliding minute, plus 1 s for the time between our send and its arrival and
# 1 s for clock differences between instances (each books in its own wall clock).
WINDOW_SECONDS = 62.0
SLICE_SECONDS = 10.0  # how long a claimed slice may be used
SLICE_TARGET_SECONDS = 2.0  # a slice is sized to this much of the lane's recent use...
MIN_SLICE = {"background": 30, "interactive": 5}  # ...and never smaller (storage ops per call)
SMALLEST_PACED_SECONDS = 3.0  # ...but a paced slice's minimum is at most this much of its pace
BACKGROUND, INTERACTIVE = "background", "interactive"
LANES = (BACKGROUND, INTERACTIVE)
# A slice's label in the row: its lane, or FIRST for background calls booked for a caller first in
# line (an incremental run). Interactive and first-in-line slices are the foreground: someone waits.
FIRST = "first"
FOREGROUND = frozenset({INTERACTIVE, FIRST})
LABELS = {BACKGROUND: frozenset({BACKGROUND, FIRST}), INTERACTIVE: frozenset({INTERACTIVE})}
# A background slice is booked at most this far ahead of now: one booked further ahead would hold the
# window's room from a foreground caller arriving meanwhile. Later, the background asks again then.
BOOK_AHEAD_SECONDS = 0.5
# How far behind now the account's pace may be when a background slice is booked: the time a claim
# takes (a read and a write) is made up, not lost at every slice; too short for a burst that would
# leave seconds without calls after it.
CATCH_UP_SECONDS = 0.25


@dataclass
class Slice:
    """An open claim in the row: ``count`` calls usable from ``start`` to ``end`` (wall clock)."""

    owner: str
    lane: str  # its label: BACKGROUND, INTERACTIVE or FIRST
    count: int
    start: float
    end: float


@dataclass
class Ledger:
    """The shared row: when Partner Center paused us, calls already made, and open slices."""

    paused_until: float = 0.0
    released: dict[int, int] = field(default_factory=dict)  # second a bucket leaves the window -> calls
    slices: list[Slice] = field(default_factory=list)
    foreground: dict[int, int] = field(default_factory=dict)  # the part of ``released`` made in the foreground
    paced_at: float = 0.0  # when the next background slice is due at the account's even pace

    def prune(self, now: float, window: float) -> None:
        """Forget what no longer counts in any window that ends after ``now``."""
        self.released = {second: n for second, n in self.released.items() if second > now}
        self.foreground = {second: n for second, n in self.foreground.items() if second > now}
        self.slices = [s for s in self.slices if s.end + window > now]

    def settle(self, owner: str, lane: str, calls: list[float], window: float, label: str | None = None) -> None:
        """Replace ``owner``'s open slice of ``lane`` by the calls it really made (each held one window),
        made under a slice labelled ``label`` (the lane's name when not given)."""
        labels = LABELS.get(lane, frozenset({lane}))
        self.slices = [s for s in self.slices if not (s.owner == owner and s.lane in labels)]
        for at in calls:
            second = math.ceil(at + window)
            self.released[second] = self.released.get(second, 0) + 1
            if (label or lane) in FOREGROUND:
                self.foreground[second] = self.foreground.get(second, 0) + 1

    def waiting(self, labels: frozenset[str], now: float) -> bool:
        """Whether a slice labelled one of ``labels`` is open or booked ahead: someone has calls to make."""
        return any(s.lane in labels and s.end > now for s in self.slices)

    def background_besides(self, owner: str, now: float) -> bool:
        """Whether another owner's background slice is open or booked ahead: instances that take turns
        in the pace, each booking its turn ahead (asking again at once, they would all ask together)."""
        return any(s.lane == BACKGROUND and s.owner != owner and s.end > now for s in self.slices)

    def foreground_counts(self, now: float, window: float) -> bool:
        """Whether a foreground call made or booked still counts in the window ending at ``now``, or a
        foreground slice is open or booked: someone waited on calls within the last window."""
        return (any(second > now for second in self.foreground)
                or any(s.lane in FOREGROUND and s.end + window > now for s in self.slices))

    def held_at(self, moment: float, window: float, labels: frozenset[str] | None = None) -> int:
        """Calls that count in the sliding window ending at ``moment`` (booked slices counted whole);
        with ``labels`` (FOREGROUND), only theirs."""
        if labels is None:
            made = sum(n for second, n in self.released.items() if second > moment)
        else:
            made = sum(n for second, n in self.foreground.items() if second > moment)
        return made + sum(s.count for s in self.slices
                          if s.start <= moment < s.end + window and (labels is None or s.lane in labels))

    def peak(self, start: float, end: float, window: float, labels: frozenset[str] | None = None) -> int:
        """The most calls held at any moment of [start, end)."""
        moments = [start] + [s.start for s in self.slices if start < s.start < end]
        return max(self.held_at(moment, window, labels) for moment in moments)

    def earliest_start(self, count: int, ceiling: int, not_before: float, window: float,
                       duration: float, foreground_cap: int | None = None) -> float | None:
        """The first moment from ``not_before`` at which a slice of ``count`` calls used for
        ``duration`` keeps every window under ``ceiling`` (and the foreground's own calls under
        ``foreground_cap``, when given); ``None`` if it never fits."""
        if count > ceiling or (foreground_cap is not None and count > foreground_cap):
            return None
        frees = {float(second) for second in self.released} | {s.end + window for s in self.slices}
        for start in sorted({not_before} | {moment for moment in frees if moment > not_before}):
            if self.room(start, ceiling, window, duration, foreground_cap) >= count:
                return start
        return None

    def room(self, start: float, ceiling: int, window: float, duration: float,
             foreground_cap: int | None = None) -> int:
        """How many calls a slice starting at ``start`` may have."""
        end = start + duration + window
        room = ceiling - self.peak(start, end, window)
        if foreground_cap is not None:
            room = min(room, foreground_cap - self.peak(start, end, window, FOREGROUND))
        return max(0, room)

    def owners(self) -> set[str]:
        return {s.owner for s in self.slices}

    def book(self, owner: str, lane: str, count: int, ceiling: int, not_before: float, window: float,
             duration: float, latest: float | None = None, foreground_cap: int | None = None) -> Slice | None:
        """Add ``owner``'s slice labelled ``lane`` at the earliest moment from ``not_before`` it fits
        under ``ceiling`` (and ``foreground_cap``): all ``count`` calls, or, if that would start after
        ``latest``, as many as fit at the first moment one call does. ``None`` when not even one call
        fits by ``latest``."""
        not_before = max(not_before, self.paused_until)  # a 429 seen by any instance: nothing before it
        start = self.earliest_start(count, ceiling, not_before, window, duration, foreground_cap)
        if start is None or (latest is not None and start > latest):
            start = self.earliest_start(1, ceiling, not_before, window, duration, foreground_cap)
            if start is None or (latest is not None and start > latest):
                return None
            count = min(count, self.room(start, ceiling, window, duration, foreground_cap))
        booked = Slice(owner, lane, count, start, start + duration)
        self.slices.append(booked)
        return booked


def interactive_reserve(per_minute: int, percent: float) -> int:
    """Calls per window the background leaves free while the foreground has calls to make (the
    background always keeps at least one)."""
    reserve = math.ceil(per_minute * percent / 100.0)
    return max(0, min(reserve, per_minute - 1))


def foreground_cap(per_minute: int, percent: float, reserve: int) -> int:
    """Calls per window the foreground may hold while the background waits: ``percent`` of the
    budget, never less than the reserve, and at least one call left to the background."""
    return max(reserve, min(per_minute - 1, math.floor(per_minute * percent / 100.0)), 1)


def lane_ceiling(lane: str, per_minute: int, reserve: int) -> int:
    """The most calls any window may hold once ``lane``'s slice is added, without the row (while storage
    is away, nobody's demand is known): the interactive lane the whole budget, the background all but
    the reserve."""
    return per_minute if lane == INTERACTIVE else per_minute - reserve


def booking_limits(ledger: Ledger, label: str, now: float, per_minute: int, reserve: int,
                   cap: int, window: float = WINDOW_SECONDS) -> tuple[int, int | None]:
    """The ceiling and foreground cap a slice labelled ``label`` books under, from what the row says.
    The reserve costs nothing while nobody needs it: the background may fill the whole budget unless a
    foreground call still counts in the window (or a foreground slice is open or booked), and then
    leaves the reserve free, so the foreground's next calls find it free even where nothing leaves the
    window for a while. The foreground may use the whole budget, but while a background slice waits,
    its own calls stay under ``cap``, so it cannot starve a walk."""
    if label in FOREGROUND:
        return per_minute, (cap if ledger.waiting(frozenset({BACKGROUND}), now) else None)
    return (per_minute - reserve if ledger.foreground_counts(now, window) else per_minute), None


def background_spacing(budget: int, count: int, window: float) -> float:
    """Seconds of the account's even pace one of a slice's ``count`` background calls takes, for a
    ``budget`` of calls a window. A background slice is booked whole, so the window holds the calls
    made plus one slice: paced so the calls made leave room for that slice, the background never
    stops to wait for room (a stretch without calls comes back one window later as a stretch in
    which none leaves the window, and a foreground caller arriving then would wait it out)."""
    return window / max(1, budget - min(count, budget // 4))


def book_claim(ledger: Ledger, owner: str, label: str, count: int, *, now: float, per_minute: int, reserve: int,
               cap: int, not_before: float, window: float, duration: float, latest: float | None = None,
               smallest: int = 1, paced: bool = False) -> Slice | None:
    """Book ``owner``'s next slice labelled ``label`` under :func:`booking_limits`; ``None`` if not
    even one call fits by ``latest``.

    A foreground slice starts at the next free slot, with as many calls as fit there if the whole
    slice does not yet: someone waits on its first call. A background slice starts with what fits
    if that is at least ``smallest`` calls (a window's last calls are not left unused), else when it
    all fits; if that is over BOOK_AHEAD_SECONDS away, nothing is booked and the slice returned has no
    calls: its start is when to ask again (the room stays free for a foreground caller meanwhile).

    ``paced``: the background of every instance together keeps one even pace (``paced_at``), so that N
    instances do not fill the window N times as fast and leave nothing free for a minute; its calls
    leave room for a slice (:func:`background_spacing`). A foreground slice moves that pace on as much
    as its calls take of the budget, without waiting for it: its calls take the background's place,
    not come on top."""
    ceiling, foreground_cap_now = booking_limits(ledger, label, now, per_minute, reserve, cap, window)
    not_before = max(not_before, ledger.paused_until)
    if label in FOREGROUND:
        soonest = ledger.earliest_start(1, ceiling, not_before, window, duration, foreground_cap_now)
    else:
        if paced:
            not_before = max(not_before, ledger.paced_at)
        if ledger.room(not_before, ceiling, window, duration) >= min(count, smallest):
            soonest = not_before
        else:
            soonest = ledger.earliest_start(count, ceiling, not_before, window, duration)
        if (soonest is not None and soonest > now + BOOK_AHEAD_SECONDS and (latest is None or soonest <= latest)
                and not ledger.background_besides(owner, now)):
            return Slice(owner, label, 0, soonest, soonest)
    if soonest is not None:
        latest = soonest if latest is None else min(latest, soonest)
    booked = ledger.book(owner, label, count, ceiling, not_before, window, duration, latest, foreground_cap_now)
    if booked is not None and paced:
        spacing = (window / per_minute if label in FOREGROUND
                   else background_spacing(per_minute, booked.count, window))
        ledger.paced_at = max(ledger.paced_at, booked.start - CATCH_UP_SECONDS) + booked.count * spacing
    return booked


class Lane:
    """One lane's side of the budget in one process: its open slice, its recent use, its pace."""

    def __init__(self, name: str, min_slice: int) -> None:
        self.name = name
        self.min_slice = min_slice
        self.count = self.remaining = 0
        self.start = self.end = 0.0
        self.unsettled: list[float] = []  # calls under the lane's open slice, not yet settled in the row
        self.recent: deque[float] = deque()  # the lane's calls in the last SLICE_TARGET_SECONDS
        self.spacing = 0.0  # seconds between two calls of a paced lane (0: not paced)
        self.paced_at = 0.0  # when the lane's next call is due at its even pace (never moves unpaced)
        self.label = name  # the open slice's label in the row (FIRST for a first-in-line claim)
        self.ask_at = 0.0  # when to claim again, after a claim that booked nothing
        self.slice_spacing = 0.0  # the pace the open background slice was booked at, if slower

    def pace(self, per_window: int, window: float) -> None:
        """Spread the lane's calls evenly: at most ``per_window`` in any window."""
        self.spacing = window / per_window

    def due(self) -> float:
        """The moment from which the lane's pace lets its next call start. No burst: calls made ahead of
        the pace would leave a stretch without calls, one window later a stretch in which none leaves."""
        return self.paced_at

    def paced_call(self, now: float) -> None:
        if self.spacing:
            self.paced_at = max(self.paced_at, now) + max(self.spacing, self.slice_spacing)

    def usable(self, now: float) -> bool:
        return self.remaining > 0 and self.start <= now < self.end

    def booked_ahead(self, now: float) -> bool:
        return self.remaining > 0 and now < self.start

    def smallest(self) -> int:
        """The lane's smallest slice: its minimum and, paced, at most SMALLEST_PACED_SECONDS of its pace
        (a slice counts whole, so the window holds one slice not made yet, which the pace leaves free)."""
        if self.spacing:
            return min(self.min_slice, math.ceil(SMALLEST_PACED_SECONDS / self.spacing))
        return self.min_slice

    def slice_size(self, now: float, ceiling: int, instances: int) -> int:
        """The next slice: about SLICE_TARGET_SECONDS of the lane's recent use, at least its minimum,
        at most half its ceiling's share among ``instances`` and, paced, SLICE_TARGET_SECONDS of its
        pace (a slice is booked whole: a larger one would be calls held ahead of the foreground's)."""
        while self.recent and self.recent[0] <= now - SLICE_TARGET_SECONDS:
            self.recent.popleft()
        smallest = self.smallest()
        largest = ceiling // (2 * max(1, instances))
        if self.spacing:
            largest = min(largest, math.ceil(SLICE_TARGET_SECONDS / self.spacing))
        largest = max(smallest, largest)
        return max(1, min(ceiling, largest, max(smallest, math.ceil(len(self.recent) * 1.25))))

    def take(self, now: float) -> None:
        """A call starts under the lane's open slice."""
        self.remaining -= 1
        self.unsettled.append(now)

    def open(self, booked: Slice, paced_until: float = 0.0) -> None:
        """The slice just booked in the row is the lane's now (none, to ask again at its start, when
        it has no calls). A background slice's calls are spread over its part of the account's pace,
        which ends at ``paced_until``: the next slice is due as the last call goes."""
        if not booked.count:
            self.ask_at = booked.start
            return
        self.count = self.remaining = booked.count
        self.start, self.end = booked.start, booked.end
        self.label = booked.lane
        self.slice_spacing = ((paced_until - booked.start) / booked.count
                              if booked.lane == BACKGROUND and paced_until > booked.start else 0.0)
