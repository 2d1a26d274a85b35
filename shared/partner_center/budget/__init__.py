"""The Partner Center request budget: how many calls may start, and when, so the API never throttles us.

The client asks a :class:`RequestBudget` before every call. A single run can use
:class:`LocalRequestBudget`, a sliding window in the process. The service uses
:class:`SharedRequestBudget`, because Partner Center counts a partner tenant's requests together,
whoever sends them, and N instances with a window each would send N times the limit:

- Every instance books its calls in one row per account of the ``RequestBudget`` table, with ETag
  concurrency. It claims a **slice** of calls (about two seconds of its recent use, at least
  ``min_slice``, so a storage operation buys many calls) usable for ``slice_seconds``, held whole
  until its end plus the window; at its next claim it replaces the slice by the calls it really
  made, each held one window (per-second buckets). A crashed instance's slice frees itself.
- A claim never queues behind rivals: it books the earliest moment at which its slice fits under
  the limit in every sliding window it can touch, possibly in the future, and sleeps until then. A
  lone background instance books no slice over half a second ahead: it asks again then, and the
  room stays free meanwhile for a caller someone waits on.
- **Lanes.** The interactive lane (on-demand syncs, webhooks, "sync now") and background claims made
  for a caller first in line (an incremental run) are the **foreground**: their slices start at the
  next free slot. The background (timers, reconciliation) may use the whole budget while no
  foreground slice is in the row, and leaves a reserved share free while one is, whichever instance
  holds it: the reserve costs nothing unused. While a background slice waits, the foreground's own
  calls stay under a set share, so it cannot starve a walk either.
- **Paced.** The background of all instances together spreads its calls evenly (``PacedAt`` in the
  row), from the first and leaving room in the window for the slice it books whole: a sliding window
  alone let a walk's sixteen threads spend a real minute's calls in 2.5 s, and everything after wait
  the other 58 s; a walk that stops for room, or runs ahead of its pace, leaves seconds without
  calls that come back a window later as seconds in which none leaves it.
- **First in line.** Within a process, a lane's calls go first to runs someone waits on (an
  incremental sync bringing in a customer who just accepted), then to the rest (a walk, which has
  hours); between instances, the foreground rule above.
- A 429 seen anywhere is stored as ``PausedUntil``: every instance books nothing before it, and
  each stops at its next claim, within about one slice.
- **Storage unavailable**: an instance falls back to a local sliding window of ``1/instances`` of
  the budget (never unbounded), tries storage again every few seconds, and books the calls it made
  meanwhile once storage is back.

:mod:`.ledger` holds the booking rules as plain data, :mod:`.table` the row, :mod:`.shared` puts
them together, :class:`RequestBudgets` keeps one per account for the process.
"""

from __future__ import annotations

from typing import Protocol

from .budgets import BudgetConfig, RequestBudgets
from .lanes import LaneBudget
from .ledger import BACKGROUND, INTERACTIVE, LANES, Ledger, Slice, interactive_reserve
from .shared import BudgetStats, SharedRequestBudget
from .window import LocalRequestBudget, SlidingWindow


class RequestBudget(Protocol):
    """What the Partner Center client needs of a budget."""

    def acquire(self, deadline: float | None = None) -> None:
        """Block until a request may start; raise DeadlineExceeded if that is past ``deadline``
        (a ``time.monotonic()`` value)."""

    def pause(self, seconds: float) -> None:
        """Partner Center said 429: start nothing for ``seconds``."""

    def first_in_line(self) -> "RequestBudget":
        """The same budget, its calls going before the process's other calls on it."""


__all__ = [
    "RequestBudget", "LocalRequestBudget", "SlidingWindow",
    "SharedRequestBudget", "LaneBudget", "BudgetStats", "RequestBudgets", "BudgetConfig",
    "Ledger", "Slice", "interactive_reserve", "BACKGROUND", "INTERACTIVE", "LANES",
]
