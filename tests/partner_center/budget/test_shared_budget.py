"""The storage-backed budget against Azurite: instances share one limit, a 429 pauses them all,
the reserve is free while nobody needs it and kept while someone does, and an outage falls back
to a bounded local share."""

from __future__ import annotations

import threading
import time

import pytest

from shared.partner_center import DeadlineExceeded
from shared.settings import Settings, SettingsError
from shared.store import TableNames, Tables
from shared.partner_center.budget import BudgetConfig, RequestBudgets
from shared.partner_center.budget.table import ROW_KEY, ledger_from_row


def take_all(lane, seconds: float = 0.5) -> list[float]:
    """Acquire until the budget makes the lane wait; the times it was let through."""
    starts = []
    while True:
        try:
            lane.acquire(time.monotonic() + seconds)
        except DeadlineExceeded:
            return starts
        starts.append(time.time())


def test_instances_share_one_limit(make_budget):
    instances = [make_budget(60, interactive_reserve_percent=0, min_slice={"background": 5}) for _ in range(3)]
    taken: list[list[float]] = [[] for _ in instances]

    def run(index: int) -> None:
        taken[index] = take_all(instances[index].lane("background"), 0.3)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(instances))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(map(len, taken)) == 60  # which instance got how many is a race; the total is not


def test_one_storage_operation_buys_many_calls(make_budget):
    budget = make_budget(600)
    lane = budget.lane("background")
    for _ in range(300):
        lane.acquire()
    assert budget.stats.storage_operations <= 300 / 10


@pytest.mark.slow
def test_a_pause_seen_by_one_instance_holds_every_instance(make_budget, tables):
    first, second = make_budget(600), make_budget(600)
    first.lane("background").acquire()
    first.lane("background").pause(2.0)
    row = ledger_from_row(tables.client(tables.names.request_budget).get_entity("acct", ROW_KEY))
    assert row.paused_until == pytest.approx(time.time() + 2.0, abs=0.5)
    started = time.time()
    second.lane("interactive").acquire()
    assert time.time() - started >= 1.5


def test_a_reconciliation_uses_the_whole_budget_while_nobody_else_waits(make_budget):
    reconciliation, webhooks = make_budget(100), make_budget(100)
    assert len(take_all(reconciliation.lane("background"))) == 100  # the reserve costs nothing unused
    with pytest.raises(DeadlineExceeded):
        webhooks.lane("interactive").acquire(time.monotonic() + 0.5)  # the window is full: nobody jumps it


@pytest.mark.slow
def test_an_interactive_caller_takes_the_next_free_slot_and_then_the_reserve(make_budget):
    # A 3 s window: the reconciliation's first 100 calls leave it 3-4 s after they start.
    options = dict(window=3.0, slice_seconds=2.0)
    reconciliation, webhooks = make_budget(100, **options), make_budget(100, **options)
    filled = take_all(reconciliation.lane("background"), 0.3)
    assert len(filled) == 100
    stop = threading.Event()

    def walk() -> None:
        while not stop.is_set():
            try:
                reconciliation.lane("background").acquire(time.monotonic() + 0.3)
            except DeadlineExceeded:
                continue

    walkers = [threading.Thread(target=walk) for _ in range(4)]
    for thread in walkers:
        thread.start()
    waits = []
    try:
        for _ in range(12):
            asked = time.monotonic()
            webhooks.lane("interactive").acquire(asked + 8)
            waits.append(time.monotonic() - asked)
            time.sleep(0.3)
    finally:
        stop.set()
        for thread in walkers:
            thread.join()
    # The first call waits for the window to free a slot, not behind the walk's next slices...
    assert waits[0] < 3.0 + 1.0 + 1.0, waits  # the window, its rounding to the second, a noisy machine
    # ...and the ones after it find the reserve the walk now leaves free.
    assert sorted(waits[1:])[len(waits) // 2] < 0.3 and max(waits[1:]) < 2.0, waits


def test_the_interactive_lane_borrows_what_the_background_leaves(make_budget):
    budget = make_budget(100)
    assert len(take_all(budget.lane("interactive"))) == 100


def _walk_grants_while_waiting(budget, first: bool) -> tuple[list[int], int]:
    """Sixteen walk threads take every call they can; one caller makes 6 calls, one at a time.
    For each of its calls: how many walk calls were let through while it waited; and how many the
    walk had made before the caller's first."""
    grants: list[float] = []
    lock = threading.Lock()
    stop = threading.Event()
    background = budget.lane("background")

    def walk() -> None:
        while not stop.is_set():
            try:
                background.acquire(time.monotonic() + 0.2)
            except DeadlineExceeded:
                continue
            with lock:
                grants.append(time.monotonic())
            time.sleep(0.01)  # the call itself

    walkers = [threading.Thread(target=walk) for _ in range(16)]
    for thread in walkers:
        thread.start()
    caller = background.first_in_line() if first else background
    overtaken = []
    try:
        time.sleep(0.3)  # the walk saturates the budget
        with lock:
            walked = len(grants)
        for _ in range(6):
            asked = time.monotonic()
            caller.acquire(time.monotonic() + 10)
            got = time.monotonic()
            with lock:
                overtaken.append(sum(1 for at in grants if asked < at < got))
            time.sleep(0.01)
    finally:
        stop.set()
        for thread in walkers:
            thread.join()
    return overtaken, walked


@pytest.mark.slow
def test_a_call_first_in_line_goes_before_a_walks_threads(make_budget):
    # 60 calls a second: the walk alone could use them all.
    options = dict(window=1.0, slice_seconds=0.25, interactive_reserve_percent=0, min_slice={"background": 5})
    ahead, walked = _walk_grants_while_waiting(make_budget(60, **options), first=True)
    assert walked >= 5, "the walk was taking the budget's calls when the caller asked"
    # Only a walk call already past the check can slip in, or one granted while the caller was
    # descheduled between noting the time and asking: on a loaded machine, now and then one more.
    # (A caller in the queue with everyone used to be overtaken by many; since the background
    # keeps one even pace (PacedAt) it often is not, so it is no longer a reliable contrast.)
    assert sorted(ahead)[len(ahead) // 2] <= 1 and sum(ahead) <= 6, ahead


@pytest.mark.slow
def test_a_paced_lane_spreads_its_calls_instead_of_spending_the_window_at_once(make_budget):
    # 60 calls per 6 s window, slices of 5 booked whole: one call every 6 / 55 s from the first, no burst.
    options = dict(window=6.0, interactive_reserve_percent=0, min_slice={"background": 5})
    paced = make_budget(60, paced=("background",), **options)
    taken: list[float] = []
    lock = threading.Lock()
    started = time.time()

    def walk() -> None:
        while time.time() - started < 4.0:
            try:
                paced.lane("background").acquire(time.monotonic() + 2.0)
            except DeadlineExceeded:
                return
            with lock:
                taken.append(time.time())

    threads = [threading.Thread(target=walk) for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)
    first = time.monotonic()
    paced.lane("background").first_in_line().acquire(time.monotonic() + 2)
    waited = time.monotonic() - first
    for thread in threads:
        thread.join(timeout=10)
    early = [at for at in taken if at - started < 3.0]
    assert 22 <= len(early) <= 32, len(early)  # 3 s of the pace (27.5 calls), not all 60 at once
    late = [at for at in taken if 1.0 <= at - started < 3.0]
    assert 14 <= len(late) <= 21, len(late)  # the same pace in any part of it
    assert waited < 0.5, waited  # a call first in line waits for the next paced call, not the window

    unpaced = make_budget(60, account_id="other", **options)
    assert len(take_all(unpaced.lane("background"), 0.3)) == 60  # the window alone lets them all through


@pytest.mark.slow
def test_a_crashed_instance_frees_its_slice_after_the_window(make_budget):
    crashed = make_budget(20, window=2.0, slice_seconds=1.0, min_slice={"background": 20},
                          interactive_reserve_percent=0)
    crashed.lane("background").acquire()  # books all 20, uses 1, never comes back
    survivor = make_budget(20, window=2.0, slice_seconds=1.0, interactive_reserve_percent=0,
                           min_slice={"background": 5})
    started = time.monotonic()
    survivor.lane("background").acquire(time.monotonic() + 5)
    assert 2.5 <= time.monotonic() - started < 4.5  # the slice's end (1 s) plus the window (2 s)


def test_without_storage_an_instance_uses_a_bounded_share_and_returns_when_storage_does(
        relay, relayed_connection, tables):
    names = TableNames(request_budget=tables.names.request_budget)
    with Tables(relayed_connection, names) as through_relay:
        from shared.partner_center.budget import SharedRequestBudget

        budget = SharedRequestBudget(through_relay.client(names.request_budget), "acct", 80,
                                     interactive_reserve_percent=0, fallback_instances=4,
                                     min_slice={"background": 5}, retry_storage_seconds=1.0)
        lane = budget.lane("background")
        for _ in range(5):
            lane.acquire()
        assert budget.stats.claims == 1 and not budget.using_fallback
        relay.down()
        # 80 / 4 instances = 20 calls a window, the 5 already made included; then it waits.
        assert len(take_all(lane, 0.5)) == 15
        assert budget.using_fallback and budget.stats.fallback_calls == 15
        relay.up()
        time.sleep(1.1)
        started = time.monotonic()
        lane.acquire(time.monotonic() + 3)
        assert time.monotonic() - started < 1.0 and not budget.using_fallback
    row = ledger_from_row(tables.client(tables.names.request_budget).get_entity("acct", ROW_KEY))
    assert sum(row.released.values()) == 20, "the calls made without storage are booked once it is back"


def test_unreachable_storage_never_blocks_longer_than_its_timeouts(make_budget, tables):
    from socket import socket

    with socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        connection = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                      f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
        with Tables(connection) as nowhere:
            budget = make_budget(40, table=nowhere.client("RequestBudget"), fallback_instances=2,
                                 interactive_reserve_percent=0)
            started = time.monotonic()
            assert len(take_all(budget.lane("background"), 0.3)) == 20
            assert time.monotonic() - started < 3


def test_the_owner_gives_one_budget_per_account(tables):
    budgets, table = RequestBudgets(), tables.client(tables.names.request_budget)
    config = BudgetConfig(per_minute=300)
    background = budgets.lane(table, "acct", config)
    interactive = budgets.lane(table, "acct", config, lane="interactive")
    assert background.budget is interactive.budget and background.per_minute == 300
    assert budgets.lane(table, "other", config).budget is not background.budget
    with pytest.raises(ValueError, match="unknown lane"):
        budgets.lane(table, "acct", config, lane="urgent")


def test_another_owner_or_other_figures_give_another_budget(tables):
    budgets, table = RequestBudgets(), tables.client(tables.names.request_budget)
    first = budgets.lane(table, "acct", BudgetConfig(300)).budget
    assert RequestBudgets().lane(table, "acct", BudgetConfig(300)).budget is not first
    changed = budgets.lane(table, "acct", BudgetConfig(300, interactive_reserve_percent=20)).budget
    assert changed is not first and changed.reserve == 60
    assert budgets.lane(table, "acct", BudgetConfig(300, interactive_reserve_percent=20)).budget is changed
    capped = budgets.lane(table, "acct", BudgetConfig(300, interactive_reserve_percent=20, interactive_max_percent=30))
    assert capped.budget is not changed and capped.budget.foreground_cap == 90


@pytest.mark.parametrize("name, value, problem", [
    ("PARTNER_CENTER_INTERACTIVE_RESERVE_PERCENT", "60", "at most 50"),
    ("PARTNER_CENTER_INTERACTIVE_RESERVE_PERCENT", "ten", "must be a number"),
    ("PARTNER_CENTER_INTERACTIVE_MAX_PERCENT", "0", "at least 1"),
    ("PARTNER_CENTER_INTERACTIVE_MAX_PERCENT", "120", "at most 100"),
    ("PARTNER_CENTER_BUDGET_FALLBACK_INSTANCES", "0", "at least 1"),
    ("PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE", "0", "at least 1"),
])
def test_a_bad_budget_setting_is_named(name, value, problem):
    with pytest.raises(SettingsError, match=f"{name} {problem}|{name} must be {problem}|{name}.*{problem}"):
        Settings.from_env({name: value})


@pytest.mark.slow
def test_storage_that_accepts_but_never_answers_falls_back_after_its_timeouts(make_budget):
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel accepts connections; nobody ever reads or answers
        port = silent.getsockname()[1]
        connection = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                      f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")
        with Tables(connection) as stalled:
            budget = make_budget(40, table=stalled.client("RequestBudget"), fallback_instances=4,
                                 interactive_reserve_percent=0)
            started = time.monotonic()
            budget.lane("background").acquire()
            assert time.monotonic() - started < 8  # the 5 s read timeout, not the SDK's retries
            assert budget.using_fallback and budget.stats.fallback_calls == 1
