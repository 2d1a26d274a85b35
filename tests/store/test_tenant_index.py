"""The tenant index: written with every organization create, read by contact-edit checks."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from shared.store import CREATE, END, OrganizationStore, OrganizationWrite
from shared.store.tenant_index import TenantIndex
from tests.store.conftest import ACCOUNT, T0, content, new_tenant


def _create(store: OrganizationStore, account: str, count: int) -> list[str]:
    writes = []
    for _ in range(count):
        fields = content()
        writes.append(OrganizationWrite(new_tenant(), CREATE, T0, fields))
    store.apply(account, writes)
    return [write.tenant_id for write in writes]


def test_every_create_is_indexed_under_its_account_and_other_writes_add_nothing(tables):
    store = OrganizationStore(tables)
    tenants = _create(store, ACCOUNT, 130)
    store.apply(ACCOUNT, [OrganizationWrite(tenants[0], END, T0)])
    index = TenantIndex(tables)
    assert all(index.accounts_of(tenant) == [ACCOUNT] for tenant in tenants[:5])
    assert len(list(tables.tenant_index.list_entities())) == 130


def test_a_customer_of_two_accounts_names_both(tables):
    store = OrganizationStore(tables)
    tenant = _create(store, ACCOUNT, 1)[0]
    store.apply("second-account", [OrganizationWrite(tenant, CREATE, T0, content())])
    assert sorted(TenantIndex(tables).accounts_of(tenant)) == [ACCOUNT, "second-account"]


def test_accounts_added_at_once_by_many_writers_are_all_kept(tables):
    tenant = new_tenant()
    index = TenantIndex(tables)
    accounts = [f"account-{n}" for n in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(lambda account: TenantIndex(tables).record(account, [tenant]), accounts))
    assert sorted(index.accounts_of(tenant)) == accounts
    index.record(accounts[0], [tenant])  # again: nothing changes
    assert sorted(index.accounts_of(tenant)) == accounts


def test_a_miss_scans_organizations_until_the_index_is_complete(tables, request_log):
    legacy_tenant = new_tenant()
    tables.organizations.create_entity({"PartitionKey": "legacy", "RowKey": legacy_tenant, "Status": "active"})
    index = TenantIndex(tables)
    assert not index.is_complete()
    assert index.accounts_of(new_tenant()) == []  # unknown: scanned, nothing found
    assert index.accounts_of(legacy_tenant) == ["legacy"]  # found by the scan, then indexed
    assert [row["RowKey"] for row in tables.tenant_index.query_entities(
        "PartitionKey eq @pk", parameters={"pk": legacy_tenant[0]})] == [f"{legacy_tenant}|legacy"]


def test_a_page_of_new_customers_is_written_in_a_transaction_per_bucket(tables, request_log):
    tenants = [new_tenant() for _ in range(300)]
    request_log.requests.clear()
    assert TenantIndex(tables).record(ACCOUNT, tenants) == 300
    # One transaction per bucket (16 hex digits; none holds 100 of 300 random GUIDs), nothing else.
    assert len(request_log.requests) == len(request_log.batches()) <= 16
    assert all(TenantIndex(tables).accounts_of(tenant) == [ACCOUNT] for tenant in tenants[:20])


def test_rows_of_the_old_layout_are_still_read_and_the_migration_goes_on_where_it_stopped(tables):
    old, both = new_tenant(), new_tenant()
    tables.tenant_index.create_entity({"PartitionKey": old, "RowKey": "accounts", "Accounts": "a-one"})
    tables.tenant_index.create_entity({"PartitionKey": both, "RowKey": "accounts", "Accounts": "a-one"})
    tables.tenant_index.create_entity({"PartitionKey": "_index", "RowKey": "complete", "Organizations": 2})
    for tenant in (old, both):
        tables.organizations.create_entity({"PartitionKey": "a-one", "RowKey": tenant, "Status": "active"})
    others = [new_tenant() for _ in range(1500)]
    for start in range(0, 1500, 100):
        tables.organizations.submit_transaction([("create", {"PartitionKey": "a-two", "RowKey": t})
                                                 for t in others[start:start + 100]])
    index = TenantIndex(tables)
    index.record("a-three", [both])
    assert index.is_complete()  # the old layout was complete: old rows and new rows together are
    assert index.accounts_of(old) == ["a-one"]
    assert index.accounts_of(both) == ["a-one", "a-three"]
    assert index.accounts_of(new_tenant()) == []
    assert index.ensure_backfilled(seconds=0) == 1000  # a first slice, then it stops
    assert TenantIndex(tables).ensure_backfilled() == 502  # goes on after the last key it recorded
    assert TenantIndex(tables).ensure_backfilled() == 0
    tables.tenant_index.delete_entity(old, "accounts")
    assert TenantIndex(tables).accounts_of(old) == ["a-one"]  # migrated: one range read answers


def test_backfill_indexes_every_stored_organization_once_and_then_misses_read_no_organizations(tables, request_log):
    for account in ("a-one", "a-two"):
        for _ in range(3):
            tables.organizations.create_entity({"PartitionKey": account, "RowKey": new_tenant(), "Status": "active"})
    index = TenantIndex(tables)
    assert index.ensure_backfilled() == 6
    assert index.ensure_backfilled() == 0
    assert TenantIndex(tables).is_complete()  # the mark is stored, not only remembered
    request_log.requests.clear()
    assert TenantIndex(tables).accounts_of(new_tenant()) == []
    organizations = tables.names.organizations
    assert not any(f"/{organizations}(" in url or f"/{organizations}?" in url for _, url, _ in request_log.requests)


def test_a_deployment_without_organizations_is_complete_from_its_first_lookup(tables, request_log):
    assert TenantIndex(tables).accounts_of(new_tenant()) == []
    assert TenantIndex(tables).is_complete()
    request_log.requests.clear()
    assert TenantIndex(tables).accounts_of(new_tenant()) == []
    organizations = tables.names.organizations
    assert not any(f"/{organizations}(" in url or f"/{organizations}?" in url for _, url, _ in request_log.requests)


def test_a_transaction_whose_connection_drops_is_sent_again(tables, monkeypatch):
    """Azure SDKs retry no POST: a keep-alive connection the server closed is the index's to handle."""
    from azure.core.exceptions import ServiceResponseError

    index = TenantIndex(tables)
    real_submit = index._index.submit_transaction
    tenants = [new_tenant() for _ in range(2)]
    dropped = []

    def drop_once(operations, **kwargs):
        if not dropped:
            dropped.append(True)
            real_submit(operations, **kwargs)  # it landed before its connection dropped
            raise ServiceResponseError("('Connection aborted.', RemoteDisconnected(...))")
        return real_submit(operations, **kwargs)

    monkeypatch.setattr(index._index, "submit_transaction", drop_once)
    index.record(ACCOUNT, tenants)
    assert dropped and all(index.accounts_of(tenant) == [ACCOUNT] for tenant in tenants)
