"""The request budget, on a fake clock: at most N starts in any sliding minute."""

from __future__ import annotations

import threading

import pytest

from shared.partner_center import DeadlineExceeded, LocalRequestBudget


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def test_no_sliding_minute_holds_more_than_the_budget():
    clock = FakeClock()
    budget = LocalRequestBudget(10, clock=clock, sleep=clock.sleep, window=60)
    starts = []
    for _ in range(35):
        budget.acquire()
        starts.append(clock.now)
    for first in starts:
        assert sum(1 for s in starts if first <= s < first + 60) <= 10
    assert starts[-1] < 3 * 60 + 1  # and it does not wait longer than it must


def test_a_429_pauses_everyone():
    clock = FakeClock()
    budget = LocalRequestBudget(100, clock=clock, sleep=clock.sleep)
    budget.pause(7)
    budget.acquire()
    assert clock.now >= 7


def test_waiting_past_the_deadline_raises():
    clock = FakeClock()
    budget = LocalRequestBudget(1, clock=clock, sleep=clock.sleep)
    budget.acquire()
    with pytest.raises(DeadlineExceeded):
        budget.acquire(deadline=30)
