"""The shared row's arithmetic: where a slice may start so that no sliding window goes over the limit."""

from __future__ import annotations

from shared.partner_center.budget.ledger import Ledger, Slice, interactive_reserve

W = 62.0


def test_a_slice_that_fits_starts_at_once():
    ledger = Ledger(released={100: 10})
    assert ledger.earliest_start(20, 30, not_before=50.0, window=W, duration=10) == 50.0


def test_a_full_window_books_the_slice_when_enough_calls_leave_it():
    ledger = Ledger(released={70: 20, 80: 10})
    # 30 held until 70, 10 until 80: 15 more fit under 30 only once the 20 have left.
    assert ledger.earliest_start(15, 30, not_before=50.0, window=W, duration=10) == 70.0


def test_an_open_slice_counts_whole_until_its_end_plus_the_window():
    ledger = Ledger(slices=[Slice("other", "background", 25, start=0.0, end=10.0)])
    assert ledger.held_at(71.9, W) == 25
    assert ledger.held_at(72.0, W) == 0
    assert ledger.earliest_start(10, 30, not_before=5.0, window=W, duration=10) == 72.0


def test_a_future_slice_is_respected_by_an_earlier_one():
    # Someone booked 20 from t=100; a slice from t=50 would overlap it in the windows after 100.
    ledger = Ledger(slices=[Slice("other", "background", 20, start=100.0, end=110.0)])
    assert ledger.earliest_start(15, 30, not_before=50.0, window=W, duration=10) == 172.0
    assert ledger.earliest_start(10, 30, not_before=50.0, window=W, duration=10) == 50.0


def test_settling_replaces_the_slice_by_the_calls_made():
    ledger = Ledger(slices=[Slice("me", "background", 30, 0.0, 10.0), Slice("me", "interactive", 5, 0.0, 10.0)])
    ledger.settle("me", "background", [1.2, 1.7, 3.0], W)
    assert ledger.slices == [Slice("me", "interactive", 5, 0.0, 10.0)]
    assert ledger.released == {64: 2, 65: 1}


def test_pruning_forgets_what_left_the_window():
    ledger = Ledger(released={60: 3, 90: 4}, slices=[Slice("crashed", "background", 30, 0.0, 10.0)])
    ledger.prune(75.0, W)
    assert ledger.released == {90: 4} and ledger.slices == []


def test_a_slice_larger_than_the_ceiling_never_fits():
    assert Ledger().earliest_start(31, 30, not_before=0.0, window=W, duration=10) is None


def test_the_reserve_leaves_the_background_at_least_one_call():
    assert interactive_reserve(570, 10) == 57
    assert interactive_reserve(1, 10) == 0
    assert interactive_reserve(100, 0) == 0


def test_no_window_goes_over_the_ceiling_whatever_the_order_of_claims():
    import random

    rng = random.Random(3)
    ledger, calls, now = Ledger(), [], 0.0
    for _ in range(400):
        now += rng.uniform(0, 1.5)
        ledger.prune(now, W)
        count = rng.randint(1, 12)
        start = ledger.earliest_start(count, 40, now, W, duration=10)
        owner = f"o{rng.randint(0, 3)}"
        used = sorted(rng.uniform(start, start + 10) for _ in range(rng.randint(0, count)))
        ledger.settle(owner, "background", [], W)  # the owner's previous slice, settled conservatively below
        ledger.slices.append(Slice(owner + str(len(calls)), "background", count, start, start + 10))
        calls.extend(used)
    calls.sort()
    first = 0
    for last, at in enumerate(calls):
        while at - calls[first] >= 60:
            first += 1
        assert last - first + 1 <= 40
