"""The shared budget's booking rules on made-up times: no storage, no clock, no threads."""

from __future__ import annotations

import bisect

import pytest

from shared.partner_center.budget.ledger import (BACKGROUND, FIRST, INTERACTIVE, Lane, Ledger, Slice, book_claim,
                                                 booking_limits, foreground_cap, interactive_reserve,
                                                 lane_ceiling)
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


def claim(ledger: Ledger, owner: str, label: str, count: int, now: float, *, per_minute: int = 100,
          reserve: int = 10, cap: int = 50, latest: float | None = None):
    return book_claim(ledger, owner, label, count, now=now, per_minute=per_minute, reserve=reserve, cap=cap,
                      not_before=now, window=W, duration=10, latest=latest)


def test_the_background_uses_the_whole_budget_while_nobody_else_waits():
    ledger = Ledger()
    assert claim(ledger, "walk", BACKGROUND, 100, 0.0).count == 100
    assert booking_limits(Ledger(), BACKGROUND, 0.0, 100, 10, 50) == (100, None)


def test_the_background_leaves_the_reserve_free_while_a_foreground_call_counts_in_the_window():
    for waiting in (Slice("hook", INTERACTIVE, 5, 0.0, 10.0), Slice("run", FIRST, 5, 3.0, 13.0)):
        ledger = Ledger(slices=[waiting])
        assert booking_limits(ledger, BACKGROUND, 1.0, 100, 10, 50, W) == (90, None)
        assert claim(ledger, "walk", BACKGROUND, 100, 1.0, latest=1.0).count == 85  # 90 less the 5 booked
    # A foreground slice that has ended still holds it until its calls leave the window, settled or not.
    ended = Ledger(slices=[Slice("hook", INTERACTIVE, 5, 0.0, 10.0)])
    assert booking_limits(ended, BACKGROUND, 71.0, 100, 10, 50, W)[0] == 90
    assert booking_limits(ended, BACKGROUND, 72.0, 100, 10, 50, W)[0] == 100
    ended.settle("hook", INTERACTIVE, [0.5, 9.5], W)
    assert booking_limits(ended, BACKGROUND, 71.0, 100, 10, 50, W)[0] == 90  # 9.5 + 62: second 72
    assert booking_limits(ended, BACKGROUND, 72.0, 100, 10, 50, W)[0] == 100
    # Background calls alone never hold it.
    walked = Ledger(slices=[Slice("walk", BACKGROUND, 5, 0.0, 10.0)])
    walked.settle("other", BACKGROUND, [1.0], W)
    assert booking_limits(walked, BACKGROUND, 1.0, 100, 10, 50, W)[0] == 100


def test_a_foreground_slice_takes_the_backgrounds_place_in_the_accounts_pace():
    # 100 calls per 62 s window: one every 0.62 s. A run's 10 calls move the pace on by 6.2 s, so the
    # walk's next slice waits for them instead of adding its calls on top.
    ledger, spacing = Ledger(), W / 100
    assert book_claim(ledger, "walk", BACKGROUND, 5, now=0.0, per_minute=100, reserve=10, cap=50,
                      not_before=0.0, window=W, duration=10, spacing=spacing).start == 0.0
    run = book_claim(ledger, "run", FIRST, 10, now=0.0, per_minute=100, reserve=10, cap=50, not_before=0.0,
                     window=W, duration=10, spacing=spacing)
    assert run.start == 0.0  # not held back by the pace: someone waits on it
    assert ledger.paced_at == pytest.approx(15 * spacing)
    walk = book_claim(ledger, "walk", BACKGROUND, 5, now=0.0, per_minute=100, reserve=10, cap=50,
                      not_before=0.0, window=W, duration=10, spacing=spacing)
    assert walk.start == pytest.approx(15 * spacing - 2.0)  # the pace, less its two seconds' burst


def test_a_foreground_call_takes_the_next_free_slot_behind_a_full_window():
    # The walk filled the window; 3 of its calls leave it at t=70, the rest later.
    ledger = Ledger(released={70: 3, 90: 97})
    booked = claim(ledger, "run", FIRST, 30, 50.0)
    assert (booked.start, booked.count) == (70.0, 3)  # not 30 at t=90: someone waits on the first call
    walk = claim(ledger, "walk", BACKGROUND, 30, 50.0)
    assert walk.start == 90.0 and walk.count == 30
    # From now on the walk leaves the reserve: 100 - 10 at most, the run's 3 counted.
    assert ledger.peak(90.0, 90.0 + 10 + W, W) <= 100 and booking_limits(ledger, BACKGROUND, 60.0, 100, 10, 50)[0] == 90


def test_the_foreground_may_use_the_whole_budget_unless_a_reconciliation_waits():
    assert claim(Ledger(), "hook", INTERACTIVE, 100, 0.0).count == 100
    ledger = Ledger(slices=[Slice("walk", BACKGROUND, 10, 0.0, 10.0)])
    assert booking_limits(ledger, INTERACTIVE, 1.0, 100, 10, 50) == (100, 50)
    assert claim(ledger, "hook", INTERACTIVE, 80, 1.0).count == 50  # the cap, not the 90 left
    assert claim(ledger, "run", FIRST, 5, 1.0, latest=5.0) is None  # first in line counts in the same cap
    # The foreground's calls already made count against the cap too, until they leave the window.
    made = Ledger(slices=[Slice("walk", BACKGROUND, 10, 0.0, 10.0)])
    made.settle("hook", INTERACTIVE, [0.5] * 45, W)
    assert made.foreground == {63: 45} and claim(made, "hook", INTERACTIVE, 30, 1.0, latest=1.0).count == 5


def test_the_foreground_cap_never_falls_below_the_reserve_and_leaves_the_background_a_call():
    assert foreground_cap(100, 50, 10) == 50
    assert foreground_cap(100, 5, 10) == 10
    assert foreground_cap(100, 100, 10) == 99
    assert foreground_cap(1, 100, 0) == 1


def test_without_the_row_the_background_keeps_out_of_the_reserve():
    assert lane_ceiling(INTERACTIVE, 100, 10) == 100 and lane_ceiling(BACKGROUND, 100, 10) == 90


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
    lane.pace(400, 40.0)  # paced at 10 calls a second: a slice is at most 2 s of that pace
    lane.recent.extend(11.0 + i / 100 for i in range(100))
    assert lane.slice_size(12.0, 400, instances=1) == 30
    lane.min_slice = 5
    assert lane.slice_size(12.0, 400, instances=1) == 20


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


def test_a_background_slice_takes_the_windows_last_calls_rather_than_wait_for_all():
    ledger = Ledger(released={70: 60})  # 40 of 100 left until t=70
    booked = book_claim(ledger, "walk", BACKGROUND, 46, now=50.0, per_minute=100, reserve=10, cap=50,
                        not_before=50.0, window=W, duration=10, smallest=30)
    assert (booked.start, booked.count) == (50.0, 40)
    fuller = Ledger(released={70: 80})  # 20 left: fewer than a slice's minimum, so the whole slice waits
    booked = book_claim(fuller, "walk", BACKGROUND, 46, now=50.0, per_minute=100, reserve=10, cap=50,
                        not_before=50.0, window=W, duration=10, smallest=30)
    assert (booked.start, booked.count) == (70.0, 46)


def test_the_background_of_every_instance_keeps_one_even_pace():
    # 100 calls per 62 s window: one every 0.62 s, 5 calls 3.1 s. Four instances asking at once get
    # the pace's slots one after another (2 s early at most: the burst), not four times its rate.
    ledger, spacing = Ledger(), W / 100
    starts = [book_claim(ledger, f"walk{n}", BACKGROUND, 5, now=0.0, per_minute=100, reserve=10, cap=50,
                         not_before=0.0, window=W, duration=10, spacing=spacing).start for n in range(4)]
    assert starts == pytest.approx([0.0, 1.1, 4.2, 7.3])
    assert ledger.paced_at == pytest.approx(4 * 5 * spacing)  # the four slices, end to end
    # The foreground keeps no pace: someone waits on it.
    assert claim(ledger, "hook", INTERACTIVE, 5, 0.0).start == 0.0


def walk_and_runs(*, seconds: float = 150.0, every: float = 20.0, calls: int = 100, per_minute: int = 1140,
                  latency: float = 0.05, claim_cost: float = 0.02, first_run: float = 0.0):
    """Two instances on made-up times, as SharedRequestBudget books for them (bench.pace ``first``): a walk
    calling as fast as its paced lane lets it, and an incremental run of ``calls`` calls one after another
    (first in line) every ``every`` s. Each does one thing at a time, the earlier first (a call, or a
    claim: the row's read and write), so neither books at a moment the other has not reached yet.
    Returns the run's waits for a call and the start of every call."""
    reserve = interactive_reserve(per_minute, 10.0)
    cap = foreground_cap(per_minute, 50.0, reserve)
    ledger, lanes = Ledger(), {"walk": Lane(BACKGROUND, 30), "run": Lane(BACKGROUND, 30)}
    for lane in lanes.values():
        lane.pace(per_minute, W)

    def step(owner: str, label: str, now: float) -> tuple[bool, float]:
        """What ``owner`` does at ``now``: a call (True, now), or nothing until (False, then)."""
        lane = lanes[owner]
        if lane.due() > now:
            return False, lane.due()
        if lane.usable(now):
            lane.take(now)
            lane.paced_call(now)
            lane.recent.append(now)
            return True, now
        if lane.booked_ahead(now):
            return False, lane.start
        ledger.prune(now, W)
        ledger.settle(owner, BACKGROUND, lane.unsettled, W, lane.label)
        lane.unsettled = []
        count = lane.slice_size(now, per_minute, len(ledger.owners() | {owner}))
        lane.open(book_claim(ledger, owner, label, count, now=now, per_minute=per_minute, reserve=reserve, cap=cap,
                             not_before=now, window=W, duration=10.0, smallest=lane.min_slice, spacing=lane.spacing))
        return False, now + claim_cost

    walk_at, run_at, wanted, left, waits, starts = 0.0, first_run, first_run, calls, [], []
    while min(walk_at, run_at) < seconds:
        if walk_at <= run_at:
            called, walk_at = step("walk", BACKGROUND, walk_at)
            if called:
                starts.append(walk_at)
                walk_at += latency / 16  # sixteen threads
        else:
            called, run_at = step("run", FIRST, run_at)
            if called:
                waits.append(run_at - wanted)
                starts.append(run_at)
                left -= 1
                run_at += latency + (every if left == 0 else 0.0)
                wanted, left = run_at, left or calls
    return waits, sorted(starts)


@pytest.mark.parametrize("first_run", [0.0, 4.5, 9.0, 13.5])
def test_an_incremental_run_of_100_calls_beside_a_walk_on_another_instance_never_waits_over_two_seconds(first_run):
    # The walk keeps the window full; a run of 100 calls every 20 s finds it so, and the holes a walk
    # stopped for the reserve leaves come back a window later as moments when nothing leaves it.
    waits, starts = walk_and_runs(first_run=first_run)
    assert len(waits) >= 500 and max(waits) <= 2.0
    assert max(bisect.bisect_left(starts, at + W) - i for i, at in enumerate(starts)) <= 1140  # never over the budget
