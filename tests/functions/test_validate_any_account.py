"""Contact-edit validation fails closed (docs/validation.md, "any account"): without an accountId, or
when the named account holds no organization for the customer, an organization stored under any
account's partition counts, configured or not; an accountId no configuration knows is a 404."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

from shared import app
from shared.contacts.mapping import CustomerRecord, organization_fields
from shared.contacts.validation import parse_contact_edit
from shared.functions.contacts import check_contact_edit
from shared.store import CREATE, END, OrganizationStore, OrganizationWrite, TableNames, Tables
from tests.functions.conftest import STORED_CONTACT, answer, is_problem, validate


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
            decision = check_contact_edit(edit, organizations)
            assert decision.microsoft_customer and not decision.allowed
            assert organizations.tenant_index.accounts_of(tenant) == [legacy]  # indexed on the way
        finally:
            tables.delete_all()


def _configure(monkeypatch, *names: str) -> None:
    accounts = [{"id": name, "tenantId": str(uuid.uuid4()), "clientId": "c", "clientSecretSetting": "S"}
                for name in names]
    monkeypatch.setenv("PARTNER_CENTER_ACCOUNTS", json.dumps(accounts))
    app.use(None)


def test_a_named_account_without_the_customer_is_judged_against_every_account(stores, configured, monkeypatch):
    # The Platform named the wrong account: another configured account manages the customer.
    tenant, other = str(uuid.uuid4()), "other-" + uuid.uuid4().hex[:8]
    _configure(monkeypatch, configured, other)
    _store(stores, other, tenant)
    body = answer(validate({"accountId": configured, **_edit(tenant)}))
    assert body["allowed"] is False and body["microsoftCustomer"] is True
    assert [v["code"] for v in body["violations"]] == ["CONTACT_MANAGED_IN_PARTNER_CENTER"]


def test_a_named_account_without_the_customer_counts_accounts_no_longer_configured_too(stores, configured):
    tenant = str(uuid.uuid4())
    _store(stores, "elsewhere-" + uuid.uuid4().hex[:8], tenant)
    body = answer(validate({"accountId": configured, **_edit(tenant)}))
    assert body["allowed"] is False and body["microsoftCustomer"] is True


def test_the_named_accounts_organization_decides_when_it_holds_one(stores, configured, monkeypatch):
    tenant, other = str(uuid.uuid4()), "other-" + uuid.uuid4().hex[:8]
    _configure(monkeypatch, configured, other)
    _store(stores, configured, tenant, status="relationship_ended")
    _store(stores, other, tenant)
    assert answer(validate({"accountId": configured, **_edit(tenant)})) == \
        {"allowed": True, "microsoftCustomer": False, "violations": []}
    assert answer(validate({"accountId": other, **_edit(tenant)}))["allowed"] is False


def test_a_customer_no_account_holds_is_allowed_with_a_named_account(configured):
    assert answer(validate({"accountId": configured, **_edit(str(uuid.uuid4()))}))["allowed"] is True


def test_an_account_id_no_configuration_knows_is_a_404_naming_it(stores, configured):
    tenant, unknown = str(uuid.uuid4()), "typo-" + uuid.uuid4().hex[:8]
    _store(stores, unknown, tenant)  # even one that stores the customer: it is not configured
    response = validate({"accountId": unknown, **_edit(tenant)})
    assert response.status_code == 404 and is_problem(response)
    body = answer(response)
    assert body["type"] == "urn:partner-center-sync:problem:not-found"
    assert unknown in body["detail"]
