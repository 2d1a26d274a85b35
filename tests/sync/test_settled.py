"""What a run reads of the Organizations table: a walk's page its own customers only, an unchanged
incremental run nothing (the settled list says who needs no work), an ending noted for the next."""

from __future__ import annotations

from shared.store.tenant_set import TenantSet, common
from tests.sync.conftest import ACCOUNT


class _Reads:
    """Counts what a run reads of the Organizations table: point reads and queries."""

    def __init__(self, stores, monkeypatch) -> None:
        self.points = self.queries = 0
        table = stores.tables.organizations
        get, query = table.get_entity, table.query_entities

        def counted_get(*args, **kwargs):
            self.points += 1
            return get(*args, **kwargs)

        def counted_query(*args, **kwargs):
            self.queries += 1
            return query(*args, **kwargs)

        monkeypatch.setattr(table, "get_entity", counted_get)
        monkeypatch.setattr(table, "query_entities", counted_query)

    def clear(self) -> None:
        self.points = self.queries = 0


def test_an_unchanged_incremental_run_reads_no_organization(make_sync, stores, pc, monkeypatch):
    make_sync().full()
    make_sync().incremental()  # the first finds nothing recent to trust: it reads the statuses once
    reads = _Reads(stores, monkeypatch)
    result = make_sync().incremental()
    assert result.outcome == "succeeded" and result.entities_written == 0
    assert (reads.points, reads.queries) == (0, 0)


def test_a_run_with_nothing_to_trust_reads_the_statuses_once_when_nobody_left(make_sync, stores, pc, monkeypatch):
    make_sync().full()
    reads = _Reads(stores, monkeypatch)
    assert make_sync().incremental().outcome == "succeeded"
    assert reads.queries == 1  # who is settled; the endings' second read only when someone is missing
    pc.remove_relationship(pc.customers()[2]["id"])
    stores.tables.sync_state.delete_entity(ACCOUNT, "listed")  # as after a long pause: nothing to trust
    reads.clear()
    assert make_sync().incremental().counts.ended == 1
    assert reads.queries == 2


def test_a_new_customer_costs_the_next_run_one_point_read(make_sync, stores, pc, monkeypatch):
    make_sync().full()
    make_sync().incremental()
    tenant = pc.accept_relationship(company_name="Fabrikam Ltd")
    reads = _Reads(stores, monkeypatch)
    assert make_sync().incremental().counts.created == 1
    assert reads.queries == 0 and reads.points == 1  # the new one: no row yet
    assert stores.organizations.get(ACCOUNT, tenant)["Status"] == "active"


def test_a_departure_is_ended_by_a_run_that_trusts_the_settled_list(make_sync, stores, pc):
    make_sync().full()
    make_sync().incremental()
    tenant = pc.customers()[3]["id"]
    pc.remove_relationship(tenant)
    assert make_sync().incremental().counts.ended == 1
    assert stores.organizations.get(ACCOUNT, tenant)["Status"] == "relationship_ended"


def test_an_ending_by_another_writer_is_read_again_by_the_next_run(make_sync, stores, pc):
    make_sync().full()
    make_sync().incremental()
    tenant = pc.customers()[5]["id"]
    served = pc.billing_profile(tenant)
    profile = {k: served[k] for k in ("firstName", "lastName", "email", "defaultAddress") if k in served}
    pc.remove_relationship(tenant)
    result, row = make_sync().customer(tenant)  # on demand: the relationship is gone, it is ended
    assert row["Status"] == "relationship_ended"
    pc.accept_relationship(tenant_id=tenant, billing_profile=profile)
    pc.inject("audit_records", "body", body={"totalCount": 0, "items": [], "links": {}}, times=5)
    assert make_sync().incremental().counts.updated == 1  # the settled list alone would skip it
    assert stores.organizations.get(ACCOUNT, tenant)["Status"] == "active"


def test_a_walk_reads_only_the_organizations_of_the_page_it_decides(make_sync, stores, pc, monkeypatch):
    make_sync().full()
    reads = _Reads(stores, monkeypatch)
    at_pages = []
    make_sync(after_page=lambda number: at_pages.append((reads.points, reads.queries))).full()
    listed = len(pc.customers())
    assert at_pages[0][1] == 1  # before its pages: whether the account holds any organization (one entity)
    assert all(queries == 1 for _, queries in at_pages[:-1])  # then a point read per listed customer, no query
    assert at_pages[-1][0] == listed
    assert reads.queries == 2  # the end of the walk: the active organizations, streamed once (with the last page)


def test_a_tenant_set_answers_membership_and_counts_what_two_share():
    ids = [f"{n:08x}-0000-4000-8000-{n * 7919:012x}" for n in range(10_000)]
    first, second = TenantSet(ids[:6000]), TenantSet(ids[4000:])
    assert all(t in first for t in ids[:6000]) and not any(t in first for t in ids[6000:])
    assert len(first) == 6000 and common(first, second) == 2000
    first.add(ids[9000])  # adding after a lookup thaws and freezes again
    assert ids[9000] in first and common(first, second) == 2001


def test_a_first_walk_reads_no_organization_and_a_create_by_another_writer_is_decided_again(
        make_sync, stores, pc, monkeypatch):
    late = pc.customers()[-1]["id"]  # on the last page
    reads = _Reads(stores, monkeypatch)
    at_pages = []

    def between_pages(number: int) -> None:
        at_pages.append(reads.points)
        if number == 1:
            make_sync().customer(late)  # on demand, while the walk is on its first pages

    result = make_sync(after_page=between_pages).full()
    assert result.outcome == "succeeded" and result.counts.failed == 0
    assert at_pages[0] == 0  # a first walk reads nothing to decide a page
    assert result.counts.created == len(pc.customers()) - 1 and result.counts.unchanged == 1
    assert stores.organizations.get(ACCOUNT, late)["Status"] == "active"
