"""The seeded estate: deterministic, realistic, and quirky in the ways real billing profiles are."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devstack.simulator.estate import EstateGenerator, merge_billing_profile
from devstack.simulator.resources import billing_profile_resource
from devstack.simulator.state import PartnerCenterState

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def profiles():
    """Billing profiles of a 600-customer estate, as served."""
    state = PartnerCenterState(customers=600, seed=2)
    return [state.billing_profile(item["id"]) for item in state.customers()]


def test_the_same_seed_gives_the_same_estate_and_another_seed_another():
    first, again, other = (PartnerCenterState(customers=40, seed=seed) for seed in (9, 9, 10))
    assert first.customers() == again.customers()
    assert [first.billing_profile(c["id"]) for c in first.customers()] == [
        again.billing_profile(c["id"]) for c in again.customers()
    ]
    assert {c["id"] for c in first.customers()}.isdisjoint(c["id"] for c in other.customers())


def test_two_partners_with_the_same_seed_get_different_customers():
    state = PartnerCenterState(customers=10, seed=4)
    other = state.add_partner(customers=10, seed=4)
    assert {c["id"] for c in state.customers()}.isdisjoint(c["id"] for c in state.customers(other.tenant_id))


def test_tenant_ids_are_unique_lowercase_guids_and_domains_unique_onmicrosoft():
    customers = PartnerCenterState(customers=2_000, seed=3).customers()
    ids = [c["id"] for c in customers]
    domains = [c["companyProfile"]["domain"] for c in customers]
    assert all(GUID.match(tenant) for tenant in ids)
    assert len(set(ids)) == len(set(domains)) == 2_000
    assert all(re.match(r"^[a-z]+[0-9]+\.onmicrosoft\.com$", domain) for domain in domains)


def test_the_estate_spans_countries_with_their_own_address_shapes(profiles):
    addresses = [profile["defaultAddress"] for profile in profiles]
    countries = {address["country"] for address in addresses}
    assert {"US", "GB", "DE", "FR", "NL", "JP", "BR", "IN", "AU", "ES"} <= countries
    assert all("state" in a for a in addresses if a["country"] in ("US", "BR", "IN", "AU"))
    assert not any("state" in a for a in addresses if a["country"] in ("GB", "DE", "FR", "NL"))
    assert all(re.match(r"^\d{4} [A-Z]{2}$", a["postalCode"]) for a in addresses if a["country"] == "NL")
    assert all(re.match(r"^\d{3}-\d{4}$", a["postalCode"]) for a in addresses if a["country"] == "JP")
    assert {p["culture"] for p in profiles} >= {"en-US", "de-DE", "ja-JP", "pt-BR"}


def test_names_include_accents_nordic_letters_and_japanese(profiles):
    names = " ".join(f"{p['defaultAddress']['firstName']} {p['defaultAddress']['lastName']}" for p in profiles)
    assert re.search(r"[éèü]", names) and re.search(r"[øØ]", names)
    assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", names)


def test_optional_fields_are_sometimes_absent_and_never_null(profiles):
    addresses = [profile["defaultAddress"] for profile in profiles]
    assert any("phoneNumber" not in a for a in addresses)
    assert any("addressLine2" not in a for a in addresses)
    assert any("addressLine3" in a for a in addresses)
    assert all(value is not None for p in profiles for value in (*p.values(), *p["defaultAddress"].values()))


def test_some_profiles_lack_top_level_contact_but_the_address_has_it(profiles):
    bare = [p for p in profiles if not {"firstName", "lastName", "email"} & set(p)]
    assert 0 < len(bare) < len(profiles) * 0.15
    assert any("email" not in p and "firstName" in p for p in profiles)
    for profile in bare:
        address = profile["defaultAddress"]
        assert address["firstName"] and address["lastName"] and address["emailAddress"]


def test_some_values_are_blank_or_padded_with_whitespace(profiles):
    values = [v for p in profiles for v in (*p.values(), *p["defaultAddress"].values()) if isinstance(v, str)]
    assert "" in values
    assert any(value != value.strip() and value.strip() for value in values)


def test_an_indirect_provider_attributes_most_customers_to_its_resellers():
    state = PartnerCenterState(customers=0)
    partner = state.add_partner(customers=200, resellers=3)
    account = state.account(partner.tenant_id)
    attributed = [c.indirect_reseller_id for c in account.listed()]
    assert len(partner.reseller_ids) == 3
    assert set(filter(None, attributed)) == set(partner.reseller_ids)
    assert 0.75 < sum(1 for r in attributed if r) / len(attributed) < 1


def test_the_generator_copes_with_the_benchmark_size_of_fifty_thousand_customers():
    generator = EstateGenerator(seed=1, partner_tenant_id="p")
    customers = generator.customers(50_000)
    assert len({customer.tenant_id for customer in customers}) == 50_000


@settings(max_examples=40, deadline=None)
@given(changes=st.dictionaries(
    st.sampled_from(["firstName", "lastName", "email", "culture", "language", "companyName"]),
    st.one_of(st.none(), st.text(max_size=20)),
    max_size=4,
), address_changes=st.dictionaries(
    st.sampled_from(["city", "state", "addressLine2", "addressLine3", "phoneNumber", "postalCode"]),
    st.one_of(st.none(), st.text(max_size=20)),
    max_size=4,
))
def test_a_merge_never_leaves_a_null_and_applies_every_change(changes, address_changes):
    customer = EstateGenerator(seed=1, partner_tenant_id="p").customer()
    merged = merge_billing_profile(customer.billing_profile, {**changes, "defaultAddress": address_changes})
    served = billing_profile_resource(replace(customer, billing_profile=merged))
    assert None not in served.values() and None not in served["defaultAddress"].values()
    for key, value in changes.items():
        assert served.get(key) == value
    for key, value in address_changes.items():
        assert served["defaultAddress"].get(key) == value
