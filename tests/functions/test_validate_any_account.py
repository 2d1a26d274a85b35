"""Contact-edit validation fails closed (docs/validation.md, "any account"): without an accountId, an
organization stored under any account's partition counts, configured or not."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from shared.contacts.mapping import CustomerRecord, organization_fields
from shared.contacts.validation import parse_contact_edit
from shared.functions.contacts import check_contact_edit
from shared.store import CREATE, END, OrganizationStore, OrganizationWrite, TableNames, Tables
from tests.functions.conftest import STORED_CONTACT, answer, validate


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


def test_an_organization_stored_before_the_index_existed_is_found_and_then_indexed(storage_connection, table_prefix):
    # Its own tables: a deployment older than the index, whatever this session's storage holds.
    with Tables(storage_connection, TableNames().with_prefix(table_prefix)) as tables:
        tables.create_all()
        try:
            tenant, legacy = str(uuid.uuid4()), "legacy-account"
            record = CustomerRecord(tenant, "Northwind", "northwind.onmicrosoft.com", "reseller")
            # Written straight to the table, as a deployment older than the index did.
            tables.organizations.create_entity({"PartitionKey": legacy, "RowKey": tenant, "Status": "active",
                                                **organization_fields(record, STORED_CONTACT)})
            organizations = OrganizationStore(tables)
            edit = parse_contact_edit(_edit(tenant))
            decision = check_contact_edit(edit, organizations, ["configured-account"])
            assert decision.microsoft_customer and not decision.allowed
            assert organizations.tenant_index.accounts_of(tenant) == [legacy]  # indexed on the way
        finally:
            tables.delete_all()


def test_an_account_id_still_limits_the_look_up_to_that_account(stores, configured):
    tenant = str(uuid.uuid4())
    _store(stores, "elsewhere-" + uuid.uuid4().hex[:8], tenant)
    assert answer(validate({"accountId": configured, **_edit(tenant)}))["microsoftCustomer"] is False
