"""Contact-edit validation fails closed (SPEC §5 "any account"): without an accountId, an
organization stored under any account's partition counts, configured or not."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from shared.contacts.mapping import CustomerRecord, organization_fields
from shared.store import CREATE, END, OrganizationWrite
from tests.http.conftest import STORED_CONTACT, answer, validate


def _store(stores, account: str, tenant: str, status: str = "active") -> None:
    record = CustomerRecord(tenant, "Fabrikam Ltd", "fabrikam.onmicrosoft.com", "reseller")
    now = datetime.now(timezone.utc)
    stores.organizations.apply(account, [OrganizationWrite(tenant, CREATE, now, organization_fields(record, STORED_CONTACT))])
    if status == "relationship_ended":
        stores.organizations.apply(account, [OrganizationWrite(tenant, END, now)])


def _edit(tenant: str) -> dict:
    return {"customerTenantId": tenant, "primaryContact": {"city": "Paris"}}


def test_an_organization_of_an_account_no_longer_configured_is_still_refused(stores, configured):
    tenant = str(uuid.uuid4())
    _store(stores, "retired-" + uuid.uuid4().hex[:8], tenant)  # not in the settings
    body = answer(validate(_edit(tenant)))
    assert body["allowed"] is False and body["microsoftCustomer"] is True
    assert [v["code"] for v in body["violations"]] == ["CONTACT_MANAGED_IN_PARTNER_CENTER"]


def test_an_active_organization_anywhere_outweighs_an_ended_one_here(stores, configured):
    tenant = str(uuid.uuid4())
    _store(stores, configured, tenant, status="relationship_ended")
    _store(stores, "other-" + uuid.uuid4().hex[:8], tenant)
    assert answer(validate(_edit(tenant)))["allowed"] is False


def test_an_organization_stored_before_the_index_existed_is_found_and_then_indexed(stores, configured):
    tenant = str(uuid.uuid4())
    legacy = "legacy-" + uuid.uuid4().hex[:8]
    record = CustomerRecord(tenant, "Northwind", "northwind.onmicrosoft.com", "reseller")
    # Written straight to the table, as a deployment older than the index did.
    stores.tables.organizations.create_entity({"PartitionKey": legacy, "RowKey": tenant, "Status": "active",
                                               **organization_fields(record, STORED_CONTACT)})
    assert list(stores.tables.tenant_index.query_entities("PartitionKey eq @pk", parameters={"pk": tenant})) == []
    assert not stores.organizations.tenant_index.is_complete()  # no test backfills the shared storage
    assert answer(validate(_edit(tenant)))["allowed"] is False
    rows = list(stores.tables.tenant_index.query_entities("PartitionKey eq @pk", parameters={"pk": tenant}))
    assert [row["Accounts"] for row in rows] == [legacy]


def test_an_account_id_still_limits_the_look_up_to_that_account(stores, configured):
    tenant = str(uuid.uuid4())
    _store(stores, "elsewhere-" + uuid.uuid4().hex[:8], tenant)
    assert answer(validate({"accountId": configured, **_edit(tenant)}))["microsoftCustomer"] is False
