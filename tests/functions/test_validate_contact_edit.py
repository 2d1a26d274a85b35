"""POST /api/contacts/validate (contract: docs/validation.md), through the registered function, against Azurite."""

from __future__ import annotations

import json
import uuid

import pytest

from shared import app
from shared.contacts.mapping import CONTACT_FIELDS
from tests.functions.conftest import STORED_CONTACT, answer, is_problem, validate

MANAGED = "CONTACT_MANAGED_IN_PARTNER_CENTER"
MISMATCH = "BILLING_MUST_MATCH_PRIMARY"
STORED = {name: STORED_CONTACT.value(name) for name in CONTACT_FIELDS}


def edit(tenant: str, **contacts) -> dict:
    return {"customerTenantId": tenant, **contacts}


def codes(response) -> list[tuple[str, str]]:
    return [(v["code"], v["field"]) for v in answer(response)["violations"]]


# -- Microsoft customers (active) --------------------------------------------------------------

@pytest.mark.parametrize("name", CONTACT_FIELDS)
def test_changing_a_primary_field_of_a_microsoft_customer_is_denied(seed, name):
    tenant = seed()
    response = validate(edit(tenant, primaryContact={name: STORED[name] + " changed"}))
    assert response.status_code == 200
    body = answer(response)
    assert body["allowed"] is False and body["microsoftCustomer"] is True
    assert codes(response) == [(MANAGED, f"primaryContact.{name}")]


@pytest.mark.parametrize("name", CONTACT_FIELDS)
def test_changing_a_billing_field_of_a_microsoft_customer_is_denied_twice_over(seed, name):
    tenant = seed()
    response = validate(edit(tenant, billingContact={name: STORED[name] + " changed"}))
    assert answer(response)["allowed"] is False
    assert codes(response) == [(MANAGED, f"billingContact.{name}"), (MISMATCH, f"billingContact.{name}")]


@pytest.mark.parametrize("name", CONTACT_FIELDS)
def test_resaving_the_stored_value_of_any_field_is_allowed(seed, name):
    tenant = seed()
    response = validate(edit(tenant, primaryContact={name: STORED[name]}, billingContact={name: STORED[name]}))
    assert answer(response) == {"allowed": True, "microsoftCustomer": True, "violations": []}


def test_an_edit_that_leaves_both_contacts_out_is_allowed(seed):
    assert answer(validate(edit(seed())))["allowed"] is True


def test_empty_contacts_are_a_no_op(seed):
    assert answer(validate(edit(seed(), primaryContact={}, billingContact={})))["allowed"] is True


def test_surrounding_whitespace_is_not_a_change(seed):
    response = validate(edit(seed(), primaryContact={"city": "  London\t"}, billingContact={"lastName": " Lovelace "}))
    assert answer(response)["allowed"] is True


def test_email_case_is_not_a_change(seed):
    response = validate(edit(seed(), primaryContact={"email": "ada.lovelace@contoso.COM"}))
    assert answer(response)["allowed"] is True


def test_case_in_other_fields_is_a_change(seed):
    assert codes(validate(edit(seed(), primaryContact={"city": "LONDON"}))) == [(MANAGED, "primaryContact.city")]


def test_an_empty_string_clears_a_field_and_is_denied(seed):
    assert codes(validate(edit(seed(), primaryContact={"phone": ""}))) == [(MANAGED, "primaryContact.phone")]


def test_an_empty_string_for_a_field_that_is_already_empty_is_allowed(seed):
    assert STORED["addressLine3"] == ""
    assert answer(validate(edit(seed(), primaryContact={"addressLine3": "  "})))["allowed"] is True


def test_violation_messages_send_the_partner_to_partner_center(seed):
    [violation] = answer(validate(edit(seed(), primaryContact={"email": "new@contoso.com"})))["violations"]
    assert "Microsoft Partner Center" in violation["message"] and "billing profile" in violation["message"]
    assert "new@contoso.com" not in violation["message"]


def test_a_billing_contact_copying_a_proposed_primary_still_cannot_change_a_managed_contact(seed):
    response = validate(edit(seed(), primaryContact={"city": "Paris"}, billingContact={"city": "Paris"}))
    assert codes(response) == [(MANAGED, "primaryContact.city"), (MANAGED, "billingContact.city")]


def test_violations_come_in_contract_order(seed):
    response = validate(edit(seed(), billingContact={"country": "FR", "firstName": "Bo"}, primaryContact={"email": "x@y"}))
    assert [field for _, field in codes(response)] == [
        "primaryContact.email", "billingContact.firstName", "billingContact.firstName",
        "billingContact.country", "billingContact.country",
    ]


def test_tenant_ids_match_whatever_their_case(seed):
    tenant = seed()
    assert answer(validate(edit(tenant.upper(), primaryContact={"city": "Paris"})))["allowed"] is False


# -- organizations the sync does not manage ----------------------------------------------------

def test_an_unknown_organization_is_not_a_microsoft_customer_and_may_change_anything(configured):
    response = validate(edit(str(uuid.uuid4()), primaryContact={"email": "a@b.c"}, billingContact={"email": "d@e.f"}))
    assert answer(response) == {"allowed": True, "microsoftCustomer": False, "violations": []}


def test_an_ended_relationship_releases_the_contacts_to_the_platform(seed):
    tenant = seed(status="relationship_ended")
    response = validate(edit(tenant, primaryContact={"email": "a@b.c"}, billingContact={"city": "Oslo"}))
    assert answer(response) == {"allowed": True, "microsoftCustomer": False, "violations": []}


def test_an_excluded_organization_may_change_its_primary_contact(seed):
    response = validate(edit(seed(status="excluded"), primaryContact={"email": "new@contoso.com", "city": "Leeds"}))
    assert answer(response) == {"allowed": True, "microsoftCustomer": True, "violations": []}


def test_an_excluded_organization_may_change_both_contacts_together(seed):
    same = {"city": "Leeds", "phone": "+44 113 000"}
    response = validate(edit(seed(status="excluded"), primaryContact=same, billingContact=same))
    assert answer(response)["allowed"] is True


def test_an_excluded_organization_still_keeps_billing_equal_to_primary(seed):
    response = validate(edit(seed(status="excluded"), primaryContact={"city": "Leeds"}, billingContact={"city": "York"}))
    assert answer(response)["microsoftCustomer"] is True
    assert codes(response) == [(MISMATCH, "billingContact.city")]


def test_an_excluded_organizations_billing_is_compared_with_the_stored_primary_when_none_is_proposed(seed):
    response = validate(edit(seed(status="excluded"), billingContact={"city": "York"}))
    assert codes(response) == [(MISMATCH, "billingContact.city")]


# -- accounts ----------------------------------------------------------------------------------

def test_an_account_id_that_is_not_configured_is_not_found(seed):
    tenant = seed()
    response = validate({"accountId": "another-account", **edit(tenant, primaryContact={"city": "Paris"})})
    assert response.status_code == 404 and "another-account" in answer(response)["detail"]


def test_without_an_account_id_every_configured_account_is_consulted(seed, configured, monkeypatch):
    tenant = seed()
    accounts = [{"id": name, "tenantId": str(uuid.uuid4()), "clientId": "c", "clientSecretSetting": "S"}
                for name in ("first-account", configured)]
    monkeypatch.setenv("PARTNER_CENTER_ACCOUNTS", json.dumps(accounts))
    app.use(None)
    assert codes(validate(edit(tenant, primaryContact={"city": "Paris"}))) == [(MANAGED, "primaryContact.city")]


def test_with_no_account_configured_nothing_is_waved_through(configured, monkeypatch):
    monkeypatch.delenv("PARTNER_CENTER_TENANT_ID")
    app.use(None)
    response = validate(edit(str(uuid.uuid4()), primaryContact={"city": "Paris"}))
    assert response.status_code == 503 and is_problem(response)
