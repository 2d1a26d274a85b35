"""Contact mapping (docs/storage.md): billing profile -> Primary Contact -> Organizations row content."""

from __future__ import annotations

import pytest

from shared.contacts.mapping import (
    CONTENT_FIELDS,
    MAX_STRING_CODE_UNITS,
    Contact,
    CustomerRecord,
    MalformedBillingProfile,
    ValueTooLarge,
    changed_fields,
    check_table_limits,
    content_hash,
    missing_contact_fields,
    organization_fields,
    primary_contact_from_billing_profile,
)

TENANT = "0b6c3f4e-8c1a-4a5e-9b1d-2f3e4a5b6c7d"


def full_profile(**top) -> dict:
    profile = {
        "id": "profile-1",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "email": "ada@contoso.example",
        "culture": "en-GB",
        "language": "en",
        "companyName": "Contoso",
        "defaultAddress": {
            "country": "GB",
            "city": "London",
            "state": "",
            "addressLine1": "1 Analytical Way",
            "addressLine2": "Floor 2",
            "addressLine3": "Desk 3",
            "postalCode": "N1 9GU",
            "firstName": "Address-Ada",
            "lastName": "Address-Lovelace",
            "phoneNumber": "+44 20 7946 0000",
            "emailAddress": "billing@contoso.example",
        },
        "attributes": {"etag": "abc", "objectType": "CustomerBillingProfile"},
    }
    profile.update(top)
    return profile


def customer(**overrides) -> CustomerRecord:
    values = dict(
        tenant_id=TENANT,
        company_name="Contoso",
        domain="contoso.onmicrosoft.com",
        relationship_to_partner="reseller",
    )
    values.update(overrides)
    return CustomerRecord(**values)


def test_maps_every_field_from_its_documented_place():
    contact = primary_contact_from_billing_profile(full_profile())
    assert contact == Contact(
        first_name="Ada",
        last_name="Lovelace",
        email="ada@contoso.example",
        phone="+44 20 7946 0000",
        address_line1="1 Analytical Way",
        address_line2="Floor 2",
        address_line3="Desk 3",
        city="London",
        state="",
        postal_code="N1 9GU",
        country="GB",
        culture="en-GB",
        language="en",
    )


def test_names_and_email_fall_back_to_the_default_address_when_absent_at_top_level():
    profile = full_profile()
    del profile["firstName"], profile["lastName"], profile["email"]
    contact = primary_contact_from_billing_profile(profile)
    assert (contact.first_name, contact.last_name, contact.email) == (
        "Address-Ada",
        "Address-Lovelace",
        "billing@contoso.example",
    )


def test_names_and_email_fall_back_when_blank_at_top_level():
    contact = primary_contact_from_billing_profile(full_profile(firstName="  ", lastName="", email="\t"))
    assert (contact.first_name, contact.last_name, contact.email) == (
        "Address-Ada",
        "Address-Lovelace",
        "billing@contoso.example",
    )


def test_top_level_values_win_over_the_default_address():
    contact = primary_contact_from_billing_profile(full_profile())
    assert contact.email == "ada@contoso.example"


def test_surrounding_whitespace_is_trimmed_and_nothing_else_altered():
    contact = primary_contact_from_billing_profile(
        full_profile(firstName="  Ada  Marie ", email=" Ada.Lovelace@Contoso.EXAMPLE\n")
    )
    assert contact.first_name == "Ada  Marie"
    assert contact.email == "Ada.Lovelace@Contoso.EXAMPLE"


def test_unicode_names_are_kept_as_given():
    contact = primary_contact_from_billing_profile(full_profile(firstName="Zoë", lastName="Ōtani 大谷"))
    assert (contact.first_name, contact.last_name) == ("Zoë", "Ōtani 大谷")


def test_absent_and_blank_fields_both_map_to_empty_strings():
    profile = full_profile()
    del profile["defaultAddress"]["phoneNumber"]
    profile["defaultAddress"]["city"] = "   "
    contact = primary_contact_from_billing_profile(profile)
    assert (contact.phone, contact.city) == ("", "")


def test_a_profile_without_default_address_maps_to_top_level_values_only():
    profile = full_profile()
    del profile["defaultAddress"]
    contact = primary_contact_from_billing_profile(profile)
    assert contact.first_name == "Ada"
    assert contact.country == "" and contact.phone == ""


@pytest.mark.parametrize(
    ("profile", "field"),
    [
        (full_profile(firstName=None), "firstName"),
        (full_profile(email=42), "email"),
        (full_profile(culture=["en"]), "culture"),
        (full_profile(lastName={"value": "x"}), "lastName"),
        (full_profile(defaultAddress={"postalCode": 12345}), "defaultAddress.postalCode"),
        (full_profile(defaultAddress=None), "defaultAddress"),
        (full_profile(defaultAddress="1 Main St"), "defaultAddress"),
        (full_profile(firstName="\ud800"), "firstName"),
    ],
)
def test_malformed_types_raise_an_error_naming_the_field(profile, field):
    with pytest.raises(MalformedBillingProfile) as raised:
        primary_contact_from_billing_profile(profile)
    assert raised.value.field == field
    assert isinstance(raised.value, ValueError)


def test_a_profile_that_is_not_an_object_is_malformed():
    with pytest.raises(MalformedBillingProfile):
        primary_contact_from_billing_profile(["not", "a", "profile"])


def test_missing_contact_fields_are_listed_in_contract_order():
    contact = Contact(first_name="Ada", email="ada@contoso.example", city="London")
    assert missing_contact_fields(contact) == ("lastName", "phone", "addressLine1", "postalCode", "country")


def test_optional_address_lines_and_state_are_never_listed_as_missing():
    contact = primary_contact_from_billing_profile(
        full_profile(defaultAddress={**full_profile()["defaultAddress"], "addressLine2": "", "addressLine3": "",
                                     "state": ""})
    )
    assert missing_contact_fields(contact) == ()


def test_organization_fields_have_exactly_the_contract_content_properties():
    fields = organization_fields(customer(), Contact())
    assert tuple(fields) == CONTENT_FIELDS
    assert len(fields) == 30
    assert not {"Status", "FirstSyncedAt", "LastChangedAt", "PartitionKey", "RowKey"} & set(fields)


def test_billing_contact_is_a_copy_of_the_primary_contact():
    fields = organization_fields(customer(), primary_contact_from_billing_profile(full_profile()))
    billing = {name[len("Billing"):]: value for name, value in fields.items() if name.startswith("Billing")}
    assert len(billing) == 11
    assert all(fields["Primary" + suffix] == value for suffix, value in billing.items())
    assert "BillingCulture" not in fields and "BillingLanguage" not in fields


def test_organization_fields_carry_the_customer_and_the_source():
    fields = organization_fields(customer(indirect_reseller_id="5f0e5a43-7d1b-4c8e-9a34-6e1f2d3c4b5a"), Contact())
    assert fields["CompanyName"] == "Contoso"
    assert fields["Domain"] == "contoso.onmicrosoft.com"
    assert fields["RelationshipToPartner"] == "reseller"
    assert fields["IndirectResellerId"] == "5f0e5a43-7d1b-4c8e-9a34-6e1f2d3c4b5a"
    assert fields["Source"] == "MicrosoftPartnerCenter"


def test_indirect_reseller_id_is_empty_when_none():
    assert organization_fields(customer(), Contact())["IndirectResellerId"] == ""


def test_missing_contact_fields_property_is_comma_joined_or_empty():
    complete = organization_fields(customer(), primary_contact_from_billing_profile(full_profile()))
    assert complete["MissingContactFields"] == ""
    sparse = organization_fields(customer(), Contact(first_name="Ada", last_name="L", email="a@b.c"))
    assert sparse["MissingContactFields"] == "phone,addressLine1,city,postalCode,country"


def test_a_value_over_32k_utf16_code_units_is_too_large():
    fields = organization_fields(customer(), Contact(address_line1="x" * (MAX_STRING_CODE_UNITS + 1)))
    with pytest.raises(ValueTooLarge) as raised:
        check_table_limits(fields)
    assert raised.value.field == "PrimaryAddressLine1"


def test_characters_outside_the_bmp_count_as_two_code_units():
    # 16K emoji are 32K UTF-16 code units: exactly at the limit; one more is over it.
    check_table_limits({"PrimaryFirstName": "😀" * (MAX_STRING_CODE_UNITS // 2)})
    with pytest.raises(ValueTooLarge):
        check_table_limits({"PrimaryFirstName": "😀" * (MAX_STRING_CODE_UNITS // 2) + "x"})


def test_a_row_over_one_mebibyte_is_too_large_even_when_each_value_fits():
    big = "y" * MAX_STRING_CODE_UNITS
    fields = {name: big for name in CONTENT_FIELDS[:17]}
    with pytest.raises(ValueTooLarge):
        check_table_limits(fields)


def test_ordinary_organization_fields_fit_table_storage():
    check_table_limits(organization_fields(customer(), primary_contact_from_billing_profile(full_profile())))


def test_content_hash_is_equal_for_equal_content_and_treats_absent_as_empty():
    fields = organization_fields(customer(), Contact())
    stored = {name: value for name, value in fields.items() if value}
    stored.update(Status="active", Timestamp="ignored")
    assert content_hash(stored) == content_hash(fields)


def test_content_hash_differs_when_any_content_field_differs():
    fields = organization_fields(customer(), Contact(email="a@contoso.example"))
    assert content_hash(fields) != content_hash({**fields, "PrimaryEmail": "A@contoso.example"})


def test_changed_fields_lists_old_and_new_values():
    old = organization_fields(customer(), Contact(city="London"))
    new = organization_fields(customer(company_name="Contoso Ltd"), Contact(city="Leeds"))
    assert changed_fields(old, new) == {
        "CompanyName": ("Contoso", "Contoso Ltd"),
        "PrimaryCity": ("London", "Leeds"),
        "BillingCity": ("London", "Leeds"),
    }


def test_changed_fields_treats_a_missing_old_value_as_empty():
    new = organization_fields(customer(), Contact())
    old = {name: value for name, value in new.items() if name != "IndirectResellerId"}
    assert changed_fields(old, new) == {}


def test_an_email_case_change_is_a_content_change():
    old = organization_fields(customer(), Contact(email="ada@contoso.example"))
    new = organization_fields(customer(), Contact(email="Ada@Contoso.example"))
    assert set(changed_fields(old, new)) == {"PrimaryEmail", "BillingEmail"}


def test_changed_fields_ignores_properties_that_are_not_content():
    new = organization_fields(customer(), Contact())
    old = {**new, "Status": "excluded", "PlatformNote": "kept"}
    assert changed_fields(old, {**new, "Status": "active"}) == {}
