"""The settled list: trusted while recent, never across an ending it cannot name."""

from __future__ import annotations

from datetime import timedelta

from shared.keys import utc_now
from shared.store.settled import Settled
from tests.store.conftest import ACCOUNT, new_tenant


def _written(settled: Settled, tenants: list[str], verified_at) -> str:
    _, _, generation = settled.load(ACCOUNT)
    settled.record_page(ACCOUNT, generation, 1, tenants[:2])
    settled.record_page(ACCOUNT, generation, 2, tenants[2:])
    settled.complete(ACCOUNT, generation, 2, verified_at)
    return generation


def test_a_recent_generation_is_trusted_and_the_next_is_written_beside_it(tables):
    settled, tenants = Settled(tables), [new_tenant() for _ in range(5)]
    first = _written(settled, tenants, utc_now())
    ids, lately_ended, following = settled.load(ACCOUNT)
    assert ids is not None and all(t in ids for t in tenants) and len(ids) == 5
    assert lately_ended == set() and following != first
    assert sorted(settled.previous_ids(ACCOUNT)) == sorted(tenants)


def test_an_old_generation_or_one_verified_before_many_endings_is_not_trusted(tables):
    settled, tenants = Settled(tables), [new_tenant() for _ in range(5)]
    _written(settled, tenants, utc_now() - timedelta(hours=2))
    assert settled.load(ACCOUNT)[0] is None
    _written(settled, tenants, utc_now())
    settled.note_endings(ACCOUNT, [tenants[0]])
    ids, lately_ended, _ = settled.load(ACCOUNT)
    assert ids is not None and lately_ended == {tenants[0]}  # named: only that one is read again
    settled.note_endings(ACCOUNT, [new_tenant() for _ in range(400)])
    ids, lately_ended, _ = settled.load(ACCOUNT)
    assert ids is None and lately_ended == set()  # too many to name: nothing verified before is trusted
