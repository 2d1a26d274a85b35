"""A sliding-window log of call starts: the in-process budget of one run, and the shared budget's
bounded stand-in while storage is unavailable.

A log rather than a token bucket: a bucket of capacity C refilled at R per minute admits C + R in
some minute, which is exactly what the API would throttle.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Callable

from ..errors import DeadlineExceeded

# Partner Center counts requests on arrival; a little slack on our side keeps jitter between
# our send time and its arrival time from pushing a window over the limit.
WINDOW_SECONDS = 61.0


class SlidingWindow:
    """The starts of the last ``window`` seconds; not thread-safe (its owner holds a lock)."""

    def __init__(self, window: float) -> None:
        self.window = window
        self._starts: deque[float] = deque()

    def __len__(self) -> int:
        """The starts recorded in the last window (as of the latest call)."""
        return len(self._starts)

    def next_free(self, now: float, limit: int) -> float:
        """The moment from which one more start keeps every window at most ``limit``: ``now`` if it does already."""
        self._forget(now)
        if len(self._starts) < limit:
            return now
        return self._starts[len(self._starts) - limit] + self.window

    def record(self, now: float) -> None:
        self._starts.append(now)
        self._forget(now)

    def _forget(self, now: float) -> None:
        while self._starts and self._starts[0] <= now - self.window:
            self._starts.popleft()


class LocalRequestBudget:
    """At most ``per_minute`` request starts in any sliding minute, for all threads of one process.

    A 429 that gets through anyway pauses every thread for its ``Retry-After`` (adaptive back-off).
    """

    def __init__(
        self,
        per_minute: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        window: float = WINDOW_SECONDS,
    ) -> None:
        if per_minute < 1:
            raise ValueError("per_minute must be at least 1")
        self.per_minute = per_minute
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._starts = SlidingWindow(window)
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self, deadline: float | None = None) -> None:
        """Block until a request may start; raise DeadlineExceeded if that is past ``deadline``."""
        while True:
            with self._lock:
                now = self._clock()
                ready_at = max(self._paused_until, self._starts.next_free(now, self.per_minute))
                if ready_at <= now:
                    self._starts.record(now)
                    return
            if deadline is not None and ready_at > deadline:
                raise DeadlineExceeded(
                    f"the request budget ({self.per_minute}/min) has no room before the run's time budget ends"
                )
            self._sleep(min(ready_at - now, 1.0))

    def first_in_line(self) -> "LocalRequestBudget":
        """The same budget: one run's window has no other runs to go before."""
        return self

    def pause(self, seconds: float) -> None:
        """Hold every thread back for ``seconds`` (Partner Center said 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self._clock() + max(0.0, seconds))
