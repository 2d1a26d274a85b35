"""Per-account sync state: watermark, checkpoint (ETag-guarded), lease (docs/glossary.md), manual requests."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from shared.store import ConcurrencyConflict, LeaseLost, SyncState
from shared.store.state import RUN_LEASE, WALK_LEASE
from tests.store.conftest import ACCOUNT, T0


class Clock:
    """A settable clock, so lease expiry is tested without sleeping."""

    def __init__(self, now=T0) -> None:
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(tables, clock) -> SyncState:
    return SyncState(tables, clock=clock)


def test_the_watermark_is_none_before_the_first_run(state):
    assert state.get_watermark(ACCOUNT) is None


def test_the_watermark_round_trips_as_utc(state):
    state.set_watermark(ACCOUNT, T0 + timedelta(minutes=5))
    assert state.get_watermark(ACCOUNT) == T0 + timedelta(minutes=5)
    assert state.get_watermark(ACCOUNT).utcoffset() == timedelta(0)


def test_a_naive_watermark_is_refused(state):
    with pytest.raises(ValueError):
        state.set_watermark(ACCOUNT, T0.replace(tzinfo=None))


def test_watermarks_are_per_account(state):
    state.set_watermark(ACCOUNT, T0)
    assert state.get_watermark("another-account") is None


def test_a_checkpoint_round_trips(state):
    data = {
        "next": {"uri": "/v1/customers?size=500&seekOperation=Next",
                 "headers": [{"key": "MS-ContinuationToken", "value": "opaque"}]},
        "walk_id": "w1",
        "page": 3,
        "counts": {"created": 2, "updated": 1},
    }
    etag = state.save_checkpoint(ACCOUNT, data)
    saved = state.get_checkpoint(ACCOUNT)
    assert saved.data == data and saved.etag == etag


def test_saving_over_a_checkpoint_needs_its_current_etag(state):
    first = state.save_checkpoint(ACCOUNT, {"page": 1})
    second = state.save_checkpoint(ACCOUNT, {"page": 2}, etag=first)
    assert state.get_checkpoint(ACCOUNT).data == {"page": 2}
    with pytest.raises(ConcurrencyConflict):
        state.save_checkpoint(ACCOUNT, {"page": 99}, etag=first)
    assert state.get_checkpoint(ACCOUNT).etag == second


def test_two_writers_cannot_both_start_a_checkpoint(state):
    state.save_checkpoint(ACCOUNT, {"page": 1})
    with pytest.raises(ConcurrencyConflict):
        state.save_checkpoint(ACCOUNT, {"page": 1})


def test_a_cleared_checkpoint_is_gone(state):
    etag = state.save_checkpoint(ACCOUNT, {"page": 1})
    state.clear_checkpoint(ACCOUNT, etag)
    assert state.get_checkpoint(ACCOUNT) is None


def test_clearing_a_checkpoint_someone_else_saved_is_a_conflict(state):
    first = state.save_checkpoint(ACCOUNT, {"page": 1})
    state.save_checkpoint(ACCOUNT, {"page": 2}, etag=first)
    with pytest.raises(ConcurrencyConflict):
        state.clear_checkpoint(ACCOUNT, first)


def test_a_free_lease_is_acquired(state):
    lease = state.acquire(ACCOUNT, "incremental-run", 60)
    assert lease.owner == "incremental-run" and lease.expires_at == T0 + timedelta(seconds=60)


def test_a_held_lease_is_not_acquired_by_another_run(state):
    state.acquire(ACCOUNT, "full-run", 60)
    assert state.acquire(ACCOUNT, "incremental-run", 60) is None


def test_leases_are_per_account(state):
    state.acquire(ACCOUNT, "run-a", 60)
    assert state.acquire("another-account", "run-b", 60) is not None


def test_the_walk_lease_and_the_run_lease_are_held_independently(state):
    walk = state.acquire(ACCOUNT, "walk", 60, WALK_LEASE)
    run = state.acquire(ACCOUNT, "incremental", 60, RUN_LEASE)
    assert walk is not None and run is not None
    assert state.acquire(ACCOUNT, "second-walk", 60, WALK_LEASE) is None
    state.release(walk)
    assert state.lease_holder(ACCOUNT, WALK_LEASE) is None and state.lease_holder(ACCOUNT).owner == "incremental"
    with pytest.raises(ValueError):
        state.acquire(ACCOUNT, "x", 60, "checkpoint")


def test_of_racing_acquirers_exactly_one_wins(tables, clock):
    racers = 8
    for round_no in range(5):
        account = f"race-{round_no}"
        barrier = threading.Barrier(racers)
        won = []

        def race(name: str) -> None:
            contender = SyncState(tables, clock=clock)
            barrier.wait()
            if contender.acquire(account, name, 60) is not None:
                won.append(name)

        threads = [threading.Thread(target=race, args=(f"runner-{i}",)) for i in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(won) == 1


def test_of_racing_takeovers_of_a_stale_lease_exactly_one_wins(tables, clock, state):
    state.acquire(ACCOUNT, "crashed-run", 60)
    clock.now = T0 + timedelta(minutes=5)
    barrier = threading.Barrier(6)
    won = []

    def race(name: str) -> None:
        contender = SyncState(tables, clock=clock)
        barrier.wait()
        if contender.acquire(ACCOUNT, name, 60) is not None:
            won.append(name)

    threads = [threading.Thread(target=race, args=(f"runner-{i}",)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1
    assert state.lease_holder(ACCOUNT).owner == won[0]


def test_a_stale_lease_from_a_crashed_run_is_taken_over(state, clock):
    state.acquire(ACCOUNT, "crashed-run", 60)
    clock.now = T0 + timedelta(seconds=61)
    lease = state.acquire(ACCOUNT, "next-run", 60)
    assert lease is not None and state.lease_holder(ACCOUNT).owner == "next-run"


def test_renewing_extends_the_lease(state, clock):
    lease = state.acquire(ACCOUNT, "full-run", 60)
    clock.now = T0 + timedelta(seconds=50)
    renewed = state.renew(lease, 60)
    clock.now = T0 + timedelta(seconds=100)
    assert renewed.expires_at == T0 + timedelta(seconds=110)
    assert state.acquire(ACCOUNT, "incremental-run", 60) is None


def test_renewing_a_lease_taken_over_raises_lease_lost(state, clock):
    lease = state.acquire(ACCOUNT, "slow-run", 60)
    clock.now = T0 + timedelta(seconds=61)
    state.acquire(ACCOUNT, "next-run", 60)
    with pytest.raises(LeaseLost):
        state.renew(lease, 60)


def test_a_released_lease_can_be_acquired_at_once(state):
    state.release(state.acquire(ACCOUNT, "manual-run", 60))
    assert state.acquire(ACCOUNT, "incremental-run", 60) is not None


def test_releasing_a_lease_taken_over_leaves_the_new_holder_alone(state, clock):
    old = state.acquire(ACCOUNT, "slow-run", 60)
    clock.now = T0 + timedelta(seconds=61)
    state.acquire(ACCOUNT, "next-run", 60)
    state.release(old)
    assert state.lease_holder(ACCOUNT).owner == "next-run"


def test_the_last_manual_request_is_remembered(state, clock):
    assert state.last_manual_request(ACCOUNT) is None
    state.record_manual_request(ACCOUNT)
    assert state.last_manual_request(ACCOUNT) == clock.now
