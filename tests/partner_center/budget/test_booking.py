"""The shared budget's booking rules on made-up times: no storage, no clock, no threads."""

from __future__ import annotations

import bisect
import copy

import pytest

from shared.partner_center.budget.ledger import (BACKGROUND, FIRST, INTERACTIVE, Lane, Ledger, Slice,
                                                 background_spacing, book_claim, booking_limits, foreground_cap,
                                                 interactive_reserve, lane_ceiling)
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


def test_a_paced_lane_spaces_its_calls_evenly_from_the_first():
    lane = Lane(BACKGROUND, 30)
    lane.pace(60, 6.0)  # 60 calls per 6 s window: one every 0.1 s, no burst ahead of it
    assert greedy_starts(lane, 40) == pytest.approx([i / 10 for i in range(40)])


def test_a_background_slice_spreads_its_calls_over_its_part_of_the_accounts_pace():
    lane = Lane(BACKGROUND, 30)
    lane.pace(60, 6.0)
    lane.open(Slice("me", BACKGROUND, 10, 0.0, 10.0), paced_until=2.0)  # booked at a pace of 0.2 s
    assert greedy_starts(lane, 10) == pytest.approx([i / 5 for i in range(10)])
    lane.open(Slice("me", FIRST, 10, 2.0, 12.0), paced_until=9.0)  # first in line: the lane's own pace
    assert greedy_starts(lane, 3) == pytest.approx([2.0, 2.1, 2.2])


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
    # 100 calls per 62 s window. The walk's 5 calls move the pace on by 5 x 62 / 95 s (its ceiling less
    # its slice: its slices are booked whole); a run's 10 calls by 10 x 0.62 s, so the walk's next slice
    # waits for them instead of adding its calls on top.
    ledger = Ledger()
    assert book_claim(ledger, "walk", BACKGROUND, 5, now=0.0, per_minute=100, reserve=10, cap=50,
                      not_before=0.0, window=W, duration=10, paced=True).start == 0.0
    assert ledger.paced_at == pytest.approx(5 * W / 95)
    run = book_claim(ledger, "run", FIRST, 10, now=0.0, per_minute=100, reserve=10, cap=50, not_before=0.0,
                     window=W, duration=10, paced=True)
    assert run.start == 0.0  # not held back by the pace: someone waits on it
    due = 5 * W / 95 + 10 * W / 100
    assert ledger.paced_at == pytest.approx(due)
    # Over half a second away: nothing is booked, the walk asks again then.
    early = book_claim(ledger, "walk", BACKGROUND, 5, now=0.0, per_minute=100, reserve=10, cap=50,
                       not_before=0.0, window=W, duration=10, paced=True)
    assert (early.count, early.start) == (0, pytest.approx(due)) and early not in ledger.slices
    walk = book_claim(ledger, "walk", BACKGROUND, 5, now=due - 0.4, per_minute=100, reserve=10, cap=50,
                      not_before=due - 0.4, window=W, duration=10, paced=True)
    assert walk.start == pytest.approx(due) and walk.count == 5
    assert ledger.paced_at == pytest.approx(due + 5 * W / 95)


def test_the_backgrounds_pace_leaves_room_for_its_slice_booked_whole():
    assert background_spacing(450, 30, W) == pytest.approx(W / 420)
    assert background_spacing(100, 60, W) == pytest.approx(W / 75)  # a slice counts a quarter at most
    assert background_spacing(1, 1, W) == W


def test_a_foreground_call_takes_the_next_free_slot_behind_a_full_window():
    # The walk filled the window; 3 of its calls leave it at t=70, the rest later.
    ledger = Ledger(released={70: 3, 90: 97})
    booked = claim(ledger, "run", FIRST, 30, 50.0)
    assert (booked.start, booked.count) == (70.0, 3)  # not 30 at t=90: someone waits on the first call
    walk = claim(ledger, "walk", BACKGROUND, 30, 50.0)
    assert (walk.start, walk.count) == (90.0, 0)  # not booked 40 s ahead: it asks again at t=90
    walk = claim(ledger, "walk", BACKGROUND, 30, 90.0)
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
    lane.min_slice = 30
    lane.pace(200, 40.0)  # 5 a second: the minimum is at most 3 s of the pace (it counts whole)
    assert lane.smallest() == 15 and lane.slice_size(13.0, 400, instances=1) == 15


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
    assert (booked.start, booked.count) == (70.0, 0) and not fuller.slices  # ask again at t=70
    booked = book_claim(fuller, "walk", BACKGROUND, 46, now=69.6, per_minute=100, reserve=10, cap=50,
                        not_before=69.6, window=W, duration=10, smallest=30)
    assert (booked.start, booked.count) == (70.0, 46)  # half a second ahead at most: booked


def test_the_background_of_every_instance_keeps_one_even_pace():
    # 100 calls per 62 s window, a slice of 5 booked whole: one call every 62 / 95 s, 5 calls 3.3 s.
    # Four instances asking at once get the pace's slots one after another, not four times its rate:
    # with another instance's slice open, each books its turn ahead (asking again, all would ask at once).
    ledger, turn = Ledger(), 5 * W / 95
    starts = [book_claim(ledger, f"walk{n}", BACKGROUND, 5, now=0.0, per_minute=100, reserve=10, cap=50,
                         not_before=0.0, window=W, duration=10, paced=True).start for n in range(4)]
    assert starts == pytest.approx([n * turn for n in range(4)])
    assert ledger.paced_at == pytest.approx(4 * turn)  # the four slices, end to end
    # One instance alone is told when its turn is, and books nothing ahead of it.
    alone = Ledger()
    book_claim(alone, "walk", BACKGROUND, 5, now=0.0, per_minute=100, reserve=10, cap=50, not_before=0.0, window=W,
               duration=10, paced=True)
    early = book_claim(alone, "walk", BACKGROUND, 5, now=0.0, per_minute=100, reserve=10, cap=50, not_before=0.0,
                       window=W, duration=10, paced=True)
    assert early.count == 0 and early.start == pytest.approx(turn) and len(alone.slices) == 1
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
        nonlocal ledger
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
        if lane.ask_at > now and label == BACKGROUND:
            return False, lane.ask_at
        read = copy.deepcopy(ledger)  # the row as read; written back only if a slice was booked
        read.prune(now, W)
        read.settle(owner, BACKGROUND, lane.unsettled, W, lane.label)
        count = lane.slice_size(now, per_minute, len(read.owners() | {owner}))
        booked = book_claim(read, owner, label, count, now=now, per_minute=per_minute, reserve=reserve, cap=cap,
                            not_before=now, window=W, duration=10.0, smallest=lane.smallest(), paced=True)
        lane.open(booked, read.paced_at)
        if booked.count:
            ledger, lane.unsettled = read, []
            return False, now + claim_cost  # the row's read and write
        return False, now + claim_cost / 2  # the read alone

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


@pytest.mark.parametrize("per_minute", [450, 1140])
@pytest.mark.parametrize("every", [20.0, 70.0, 150.0])
def test_an_incremental_run_of_100_calls_beside_a_walk_on_another_instance_never_waits_over_two_seconds(
        per_minute, every):
    # A walk keeps the window full; runs of 100 calls (twice the reserve at 450 a minute) arrive while
    # the reserve is kept (every 20 s) and after the walk has had the whole budget again (70, 150 s),
    # at start times across the walk's first minutes.
    for first_run in (0.0, 4.5, 13.5, 31.0, 45.0, 55.5, 62.0, 90.0, 118.4, 130.0):
        waits, starts = walk_and_runs(seconds=300.0, per_minute=per_minute, every=every, first_run=first_run)
        assert len(waits) >= 100 and max(waits) <= 2.0, (first_run, max(waits))
        assert max(bisect.bisect_left(starts, at + W) - i for i, at in enumerate(starts)) <= per_minute
