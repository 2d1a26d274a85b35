"""The Organizations table (the contract in docs/storage.md) against real Azurite."""

from __future__ import annotations

import http.server
import threading
from datetime import timedelta

import pytest
from azure.core.pipeline.transport import RequestsTransport

from shared.contacts.mapping import CONTENT_FIELDS, content_hash
from shared.store import (
    CREATE,
    END,
    EXCLUDE,
    INCLUDE,
    UPDATE,
    InvalidKey,
    OrganizationStore,
    OrganizationWrite,
    StoreError,
    TableNames,
    Tables,
)
from tests.store.conftest import ACCOUNT, T0, content, new_tenant

CONTRACT_PROPERTIES = {
    "PartitionKey", "RowKey", "CompanyName", "Domain", "RelationshipToPartner", "IndirectResellerId", "Status",
    "Source", "PrimaryFirstName", "PrimaryLastName", "PrimaryEmail", "PrimaryPhone", "PrimaryAddressLine1",
    "PrimaryAddressLine2", "PrimaryAddressLine3", "PrimaryCity", "PrimaryState", "PrimaryPostalCode",
    "PrimaryCountry", "PrimaryCulture", "PrimaryLanguage", "BillingFirstName", "BillingLastName", "BillingEmail",
    "BillingPhone", "BillingAddressLine1", "BillingAddressLine2", "BillingAddressLine3", "BillingCity",
    "BillingState", "BillingPostalCode", "BillingCountry", "MissingContactFields", "FirstSyncedAt",
    "LastChangedAt", "Version",
}


@pytest.fixture
def store(tables) -> OrganizationStore:
    return OrganizationStore(tables)


def create(store, tenant=None, at=T0, **contact) -> str:
    tenant = tenant or new_tenant()
    store.apply(ACCOUNT, [OrganizationWrite(tenant, CREATE, at, content(**contact))])
    return tenant


def test_a_created_organization_has_exactly_the_contract_properties(store):
    tenant = create(store)
    row = store.get(ACCOUNT, tenant)
    assert set(row) == CONTRACT_PROPERTIES
    assert row["PartitionKey"] == ACCOUNT and row["RowKey"] == tenant
    assert row["Status"] == "active" and row["Source"] == "MicrosoftPartnerCenter"
    assert row["FirstSyncedAt"] == T0 and row["LastChangedAt"] == T0
    assert row["Version"] == 1


def test_every_stored_change_adds_one_to_the_version(store):
    from shared.store import UPDATE, organization_state
    tenant = create(store)
    for expected in (2, 3):
        previous = organization_state(store.get(ACCOUNT, tenant))
        store.apply(ACCOUNT, [OrganizationWrite(tenant, UPDATE, T0, {"CompanyName": f"v{expected}"}, previous=previous)])
        assert store.get(ACCOUNT, tenant)["Version"] == expected


def test_tenant_ids_are_stored_lower_case(store):
    tenant = new_tenant().upper()
    create(store, tenant)
    assert store.get(ACCOUNT, tenant)["RowKey"] == tenant.lower()


def test_250_creates_go_in_three_transactions_of_at_most_100(store, request_log):
    writes = [OrganizationWrite(new_tenant(), CREATE, T0, content()) for _ in range(250)]
    stats = store.apply(ACCOUNT, writes)
    assert (stats.transactions, stats.entities) == (3, 250)
    organizations = f"/{store._table.table_name} HTTP/1.1".encode()  # not the tenant index's batches
    sizes = [body.count(b" HTTP/1.1") for body in request_log.batches() if organizations in body]
    assert sizes == [100, 100, 50]
    assert len(store.snapshot(ACCOUNT)) == 250


def test_unchanged_content_has_an_equal_snapshot_hash(store):
    fields = content(city="Zürich")
    tenant = new_tenant()
    store.apply(ACCOUNT, [OrganizationWrite(tenant, CREATE, T0, fields)])
    assert store.snapshot(ACCOUNT)[tenant].content_hash == content_hash(fields)


def test_changed_content_has_a_different_snapshot_hash(store):
    tenant = create(store)
    assert store.snapshot(ACCOUNT)[tenant].content_hash != content_hash(content(email="Ada@contoso.example"))


def test_snapshot_is_one_query_reading_only_the_needed_columns(store, tables, request_log):
    tenant = create(store)
    tables.organizations.upsert_entity({"PartitionKey": ACCOUNT, "RowKey": tenant, "PlatformNotes": "x" * 20000})
    request_log.requests.clear()
    snapshot = store.snapshot(ACCOUNT)
    assert snapshot[tenant].status == "active"
    (method, url, _), = request_log.requests
    assert method == "GET" and "$select=RowKey%2CStatus%2C" in url and "PlatformNotes" not in url


def test_a_status_snapshot_has_the_states_without_the_content(store, tables, request_log):
    tenant = create(store)
    full = store.snapshot(ACCOUNT)[tenant]
    request_log.requests.clear()
    light = store.statuses(ACCOUNT)[tenant]
    (method, url, _), = request_log.requests
    assert method == "GET" and "$select=RowKey%2CStatus%2CLastChangedAt%2CIndirectResellerId" in url
    assert (light.status, light.etag, light.changed_at, light.indirect_reseller_id) == \
        (full.status, full.etag, full.changed_at, full.indirect_reseller_id)
    assert full.content_hash and light.content_hash == ""


def test_an_update_merges_so_platform_columns_survive(store, tables):
    tenant = create(store)
    tables.organizations.upsert_entity({"PartitionKey": ACCOUNT, "RowKey": tenant, "PlatformOrgId": "org-42"})
    previous = store.snapshot(ACCOUNT)[tenant]
    later = T0 + timedelta(hours=1)
    store.apply(ACCOUNT, [OrganizationWrite(tenant, UPDATE, later, content(city="Leeds"), previous)])
    row = store.get(ACCOUNT, tenant)
    assert row["PlatformOrgId"] == "org-42"
    assert (row["PrimaryCity"], row["BillingCity"]) == ("Leeds", "Leeds")
    assert row["FirstSyncedAt"] == T0 and row["LastChangedAt"] == later


def test_ending_a_relationship_keeps_the_row_and_changes_only_status_and_time(store):
    tenant = create(store)
    before = dict(store.get(ACCOUNT, tenant))
    later = T0 + timedelta(days=1)
    store.apply(ACCOUNT, [OrganizationWrite(tenant, END, later, previous=store.snapshot(ACCOUNT)[tenant])])
    after = dict(store.get(ACCOUNT, tenant))
    assert after["Status"] == "relationship_ended" and after["LastChangedAt"] == later
    assert {k: v for k, v in after.items() if k not in ("Status", "LastChangedAt", "Version")} == {
        k: v for k, v in before.items() if k not in ("Status", "LastChangedAt", "Version")
    }
    assert after["Version"] == before["Version"] + 1


def test_a_relationship_that_returns_is_active_again(store):
    tenant = create(store)
    store.apply(ACCOUNT, [OrganizationWrite(tenant, END, T0)])
    store.apply(ACCOUNT, [OrganizationWrite(tenant, UPDATE, T0, content(), store.snapshot(ACCOUNT)[tenant])])
    assert store.get(ACCOUNT, tenant)["Status"] == "active"


def test_ending_an_unknown_organization_fails_instead_of_creating_a_partial_row(store):
    tenant = new_tenant()
    with pytest.raises(StoreError) as raised:
        store.apply(ACCOUNT, [OrganizationWrite(tenant, END, T0)])
    assert raised.value.status_code == 404
    assert store.get(ACCOUNT, tenant) is None


def test_a_create_never_overwrites_an_existing_organization(store):
    tenant = create(store, company="Original")
    stats = store.apply(ACCOUNT, [OrganizationWrite(tenant, CREATE, T0, content(company="Other"))])
    assert stats.conflicts == (tenant,) and stats.entities == 0
    assert store.get(ACCOUNT, tenant)["CompanyName"] == "Original"


def test_sync_writes_to_an_organization_known_to_be_excluded_are_skipped(store):
    tenant = create(store, company="Kept")
    store.apply(ACCOUNT, [OrganizationWrite(tenant, EXCLUDE, T0)])
    previous = store.snapshot(ACCOUNT)[tenant]
    stats = store.apply(
        ACCOUNT,
        [OrganizationWrite(tenant, UPDATE, T0, content(company="Overwritten"), previous)],
    )
    assert stats.skipped_excluded == (tenant,) and stats.entities == 0
    row = store.get(ACCOUNT, tenant)
    assert (row["Status"], row["CompanyName"]) == ("excluded", "Kept")


def test_an_exclusion_made_after_the_snapshot_is_not_overwritten(store):
    tenant = create(store, company="Kept")
    previous = store.snapshot(ACCOUNT)[tenant]
    store.apply(ACCOUNT, [OrganizationWrite(tenant, EXCLUDE, T0)])
    stats = store.apply(ACCOUNT, [OrganizationWrite(tenant, UPDATE, T0, content(company="Overwritten"), previous)])
    assert stats.conflicts == (tenant,)
    assert store.get(ACCOUNT, tenant)["Status"] == "excluded"


def test_a_write_that_loses_a_race_leaves_the_rest_of_its_transaction_to_land(store):
    raced, others = create(store, company="Raced"), [create(store, company="Old") for _ in range(4)]
    snapshot = store.snapshot(ACCOUNT)
    store.apply(ACCOUNT, [OrganizationWrite(raced, UPDATE, T0, content(company="Webhook"), snapshot[raced])])
    writes = [OrganizationWrite(t, UPDATE, T0, content(company="Walk"), snapshot[t]) for t in [raced, *others]]
    stats = store.apply(ACCOUNT, writes)
    assert stats.conflicts == (raced,) and stats.entities == 4 and stats.transactions == 1
    assert store.get(ACCOUNT, raced)["CompanyName"] == "Webhook"
    assert {store.get(ACCOUNT, t)["CompanyName"] for t in others} == {"Walk"}


def test_including_an_excluded_organization_makes_it_active_with_fresh_content(store):
    tenant = create(store, company="Old")
    store.apply(ACCOUNT, [OrganizationWrite(tenant, EXCLUDE, T0)])
    store.apply(ACCOUNT, [OrganizationWrite(tenant, INCLUDE, T0, content(company="New"))])
    row = store.get(ACCOUNT, tenant)
    assert (row["Status"], row["CompanyName"]) == ("active", "New")


def test_list_filters_by_status_and_stops_at_top(store):
    tenants = [create(store) for _ in range(5)]
    store.apply(ACCOUNT, [OrganizationWrite(tenants[0], END, T0)])
    assert [row["RowKey"] for row in store.list(ACCOUNT, status="relationship_ended")] == [tenants[0]]
    assert len(list(store.list(ACCOUNT, top=3))) == 3
    assert len(list(store.list(ACCOUNT))) == 5


def test_accounts_are_separate_partitions(store):
    create(store)
    assert store.snapshot("other-account") == {}


@pytest.mark.parametrize("tenant", ["x' or PartitionKey ne '", "0b6c3f4e-8c1a-4a5e-9b1d-2f3e4a5b6c7d'", "", None,
                                    "0b6c3f4e-8c1a-4a5e-9b1d-2f3e4a5b6c7d\n"])
def test_a_tenant_id_that_is_not_a_guid_is_refused_before_any_request(store, request_log, tenant):
    with pytest.raises(InvalidKey):
        store.get(ACCOUNT, tenant)
    with pytest.raises(InvalidKey):
        store.apply(ACCOUNT, [OrganizationWrite(tenant, END, T0)])
    assert request_log.requests == []


def test_an_account_id_with_a_quote_is_refused_before_any_query(store, request_log):
    with pytest.raises(InvalidKey):
        store.snapshot("x' or PartitionKey ne 'y")
    assert request_log.requests == []


@pytest.mark.parametrize(
    "writes",
    [
        lambda t: [OrganizationWrite(t, CREATE, T0, content()), OrganizationWrite(t, END, T0)],
        lambda t: [OrganizationWrite(t, UPDATE, T0, {"Status": "active"})],
        lambda t: [OrganizationWrite(t, CREATE, T0, {"CompanyName": "partial"})],
        lambda t: [OrganizationWrite(t, END, T0, {"CompanyName": "x"})],
        lambda t: [OrganizationWrite(t, "delete", T0)],
        lambda t: [OrganizationWrite(t, CREATE, T0.replace(tzinfo=None), content())],
        lambda t: [OrganizationWrite(t, UPDATE, T0, {**content(), "PrimaryAddressLine1": "x" * 40000})],
    ],
    ids=["twice", "not-content", "partial-create", "end-with-content", "unknown-kind", "naive-time", "too-large"],
)
def test_a_bad_write_is_refused_before_anything_is_written(store, request_log, writes):
    good = OrganizationWrite(new_tenant(), CREATE, T0, content())
    with pytest.raises(ValueError):
        store.apply(ACCOUNT, [good, *writes(new_tenant())])
    assert request_log.requests == []


def test_content_fields_are_the_contract_minus_store_properties():
    assert set(CONTENT_FIELDS) == CONTRACT_PROPERTIES - {
        "PartitionKey", "RowKey", "Status", "FirstSyncedAt", "LastChangedAt", "Version"
    }


class _Unavailable(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class _FlakyTransport(RequestsTransport):
    """Sends the next ``failures`` transaction requests to a server that answers 503."""

    def __init__(self, unavailable_url: str, failures: int) -> None:
        super().__init__()
        self.unavailable_url = unavailable_url
        self.failures = failures

    def send(self, request, **kwargs):
        if not (request.url.endswith("$batch") and self.failures > 0):
            return super().send(request, **kwargs)
        self.failures -= 1
        original, request.url = request.url, self.unavailable_url + "/devstoreaccount1/$batch"
        try:
            return super().send(request, **kwargs)
        finally:
            request.url = original  # a retry of the same request goes to Azurite again


@pytest.fixture
def unavailable_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def flaky_store(storage_connection, tables, unavailable_url, failures) -> OrganizationStore:
    transport = _FlakyTransport(unavailable_url, failures)
    flaky = Tables(storage_connection, tables.names, transport=transport, retry_backoff_factor=0.01)
    return OrganizationStore(flaky)


def test_a_transient_503_on_a_transaction_is_retried(storage_connection, tables, unavailable_url):
    store = flaky_store(storage_connection, tables, unavailable_url, failures=1)
    stats = store.apply(ACCOUNT, [OrganizationWrite(new_tenant(), CREATE, T0, content()) for _ in range(3)])
    assert stats.entities == 3
    assert len(OrganizationStore(tables).snapshot(ACCOUNT)) == 3


def test_a_lasting_503_raises_a_store_error_naming_partition_and_batch(storage_connection, tables, unavailable_url):
    writes = [OrganizationWrite(new_tenant(), CREATE, T0, content()) for _ in range(100)]
    OrganizationStore(tables).apply(ACCOUNT, writes)  # lands before the outage
    store = flaky_store(storage_connection, tables, unavailable_url, failures=10)
    replay = [OrganizationWrite(w.tenant_id, UPDATE, T0, w.fields) for w in writes]
    with pytest.raises(StoreError) as raised:
        store.apply(ACCOUNT, replay)  # updates only: no tenant-index write goes first
    error = raised.value
    assert (error.partition, error.batch, error.status_code, error.written) == (ACCOUNT, 0, 503, 0)
    assert "transaction 0" in str(error) and ACCOUNT in str(error)
    assert len(OrganizationStore(tables).snapshot(ACCOUNT)) == 100


def test_table_names_take_a_prefix_and_refuse_invalid_names():
    names = TableNames().with_prefix("t1234")
    assert names.organizations == "t1234Organizations" and names.walk == "t1234ReconciliationWalk"
    with pytest.raises(ValueError):
        TableNames().with_prefix("bad-prefix")
    with pytest.raises(ValueError):
        TableNames(organizations="x" * 64)


def test_creating_the_tables_twice_is_harmless(tables):
    tables.create_all()
