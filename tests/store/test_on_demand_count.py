"""The per-account count of on-demand syncs (SyncState ``on-demand`` row): a fixed window per
minute, shared by every instance through Table Storage, one read and one write per request."""

from __future__ import annotations

import threading
from datetime import timedelta

from shared.store import SyncState, TableNames, Tables
from tests.store.conftest import ACCOUNT, T0

WINDOW = 60


def test_the_limit_holds_within_a_window_and_says_when_the_next_one_starts(tables):
    state = SyncState(tables)
    taken = [state.take_on_demand(ACCOUNT, 3, WINDOW, T0 + timedelta(seconds=i)) for i in range(5)]
    assert taken[:3] == [0, 0, 0] and taken[3:] == [57, 56]  # refused until T0 + 60 s


def test_a_new_window_starts_counting_again(tables):
    state = SyncState(tables)
    for _ in range(2):
        state.take_on_demand(ACCOUNT, 2, WINDOW, T0)
    assert state.take_on_demand(ACCOUNT, 2, WINDOW, T0 + timedelta(seconds=59)) > 0
    assert state.take_on_demand(ACCOUNT, 2, WINDOW, T0 + timedelta(seconds=60)) == 0


def test_accounts_count_apart(tables):
    state = SyncState(tables)
    assert state.take_on_demand(ACCOUNT, 1, WINDOW, T0) == 0
    assert state.take_on_demand("fabrikam", 1, WINDOW, T0) == 0
    assert state.take_on_demand(ACCOUNT, 1, WINDOW, T0) > 0


def test_a_request_costs_one_read_and_one_write_and_a_refusal_one_read(tables, request_log):
    state = SyncState(tables)
    state.take_on_demand(ACCOUNT, 2, WINDOW, T0)
    request_log.requests.clear()
    state.take_on_demand(ACCOUNT, 2, WINDOW, T0)
    assert [method for method, _, _ in request_log.requests] == ["GET", "PUT"]
    request_log.requests.clear()
    assert state.take_on_demand(ACCOUNT, 2, WINDOW, T0) > 0
    assert [method for method, _, _ in request_log.requests] == ["GET"]


def test_instances_racing_on_one_account_take_exactly_the_limit(tables, storage_connection):
    """Four instances (each its own Table Storage clients) ask 40 times at once with a limit of 10."""
    instances = [Tables(storage_connection, tables.names) for _ in range(4)]
    results: list[int] = []
    lock = threading.Lock()

    def ask(opened: Tables) -> None:
        state = SyncState(opened)
        for _ in range(10):
            wait = state.take_on_demand(ACCOUNT, 10, WINDOW, T0)
            with lock:
                results.append(wait)

    threads = [threading.Thread(target=ask, args=(opened,)) for opened in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for opened in instances:
        opened.close()
    assert len(results) == 40 and results.count(0) == 10
