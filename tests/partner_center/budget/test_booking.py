"""The shared budget's booking rules on made-up times: no storage, no clock, no threads."""

from __future__ import annotations

import pytest

from shared.partner_center.budget.ledger import BACKGROUND, INTERACTIVE, Lane, Ledger, interactive_reserve, lane_ceiling
from shared.partner_center.budget.window import SlidingWindow

W = 62.0


def greedy_starts(lane: Lane, calls: int) -> list[float]:
    """When each of ``calls`` calls starts if every one is asked for as soon as the lane's pace allows."""
    now, starts = 0.0, []
    for _ in range(calls):
        now = max(now, lane.due())
        lane.paced_call(now)
        starts.append(now)
    return starts


def test_a_paced_lane_spaces_its_calls_evenly_after_a_two_second_burst():
    lane = Lane(BACKGROUND, 30)
    lane.pace(60, 6.0)  # 60 calls per 6 s window: one every 0.1 s
    starts = greedy_starts(lane, 40)
    assert starts[:20] == [0.0] * 20  # the burst: two seconds' worth, at once
    assert starts[20:] == pytest.approx([i / 10 for i in range(20)])  # then one every 0.1 s


def test_an_unpaced_lane_is_never_held_back_by_its_pace():
    assert greedy_starts(Lane(BACKGROUND, 30), 500) == [0.0] * 500


def test_the_background_never_books_into_the_interactive_reserve():
    reserve = interactive_reserve(100, 10)
    background, interactive = lane_ceiling(BACKGROUND, 100, reserve), lane_ceiling(INTERACTIVE, 100, reserve)
    ledger = Ledger()
    assert ledger.book("walk", BACKGROUND, 90, background, 0.0, W, 10, latest=0.0)
    assert ledger.book("timer", BACKGROUND, 1, background, 0.0, W, 10, latest=0.0) is None
    webhook = ledger.book("webhook", INTERACTIVE, 10, interactive, 0.0, W, 10, latest=0.0)
    assert webhook is not None and webhook.start == 0.0 and webhook.count == 10


def test_the_interactive_lane_may_use_the_whole_budget():
    assert lane_ceiling(INTERACTIVE, 100, 10) == 100 and lane_ceiling(BACKGROUND, 100, 10) == 90
    assert Ledger().book("hook", INTERACTIVE, 100, 100, 0.0, W, 10).count == 100


def test_nothing_is_booked_before_a_stored_pause():
    ledger = Ledger(paused_until=100.0)
    booked = ledger.book("me", BACKGROUND, 5, 30, not_before=50.0, window=W, duration=10)
    assert booked.start == 100.0 and booked.end == 110.0
    assert Ledger(paused_until=100.0).book("me", BACKGROUND, 5, 30, 50.0, W, 10, latest=99.0) is None


def test_a_slice_that_fills_the_window_holds_the_next_until_its_end_plus_the_window():
    ledger = Ledger()
    assert ledger.book("a", BACKGROUND, 30, 30, 0.0, W, 10).start == 0.0
    assert ledger.book("b", BACKGROUND, 5, 30, 1.0, W, 10).start == 72.0


def test_a_slice_that_would_start_too_late_shrinks_to_the_room_there_is_now():
    ledger = Ledger(released={100: 25})
    booked = ledger.book("me", BACKGROUND, 20, 30, 50.0, W, 10, latest=60.0)
    assert booked.start == 50.0 and booked.count == 5
    assert ledger.slices == [booked]


def test_a_slice_is_sized_to_recent_use_within_its_minimum_and_its_share():
    lane = Lane(BACKGROUND, 30)
    assert lane.slice_size(10.0, 400, instances=1) == 30  # idle: the minimum
    lane.recent.extend(9.0 + i / 100 for i in range(100))  # 100 calls in the last second
    assert lane.slice_size(10.0, 400, instances=1) == 125  # 1.25 x recent use
    assert lane.slice_size(10.0, 400, instances=4) == 50  # at most half of 1/4 of the ceiling
    assert lane.slice_size(12.0, 400, instances=1) == 30  # those calls left the 2 s it looks back


def test_a_lane_calls_only_within_its_open_slice():
    lane = Lane(BACKGROUND, 30)
    lane.open(Ledger().book("me", BACKGROUND, 2, 30, 5.0, W, 10))
    assert lane.booked_ahead(4.0) and not lane.usable(4.0)
    lane.take(5.0)
    lane.take(6.0)
    assert not lane.usable(6.5) and lane.unsettled == [5.0, 6.0]


def test_the_sliding_window_frees_a_start_one_window_after_the_one_limit_back():
    window = SlidingWindow(10.0)
    for at in (0.0, 1.0, 2.0):
        window.record(at)
    assert window.next_free(3.0, limit=4) == 3.0
    assert window.next_free(3.0, limit=2) == 11.0  # the start at 1.0 leaves the window at 11
    assert window.next_free(12.5, limit=2) == 12.5  # only the start at 2.0 is left
