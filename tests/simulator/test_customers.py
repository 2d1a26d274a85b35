"""The customer list, customers by id and billing profiles, as a client walks them over HTTPS."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.simulator import PartnerCenterSimulator
from tests.simulator.conftest import app_token, app_user_token, get, walk

GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """1,203 customers: three pages of 500, the last one short."""
    with PartnerCenterSimulator(customers=1_203, seed=11, state_dir=tmp_path_factory.mktemp("large")) as sim:
        yield sim


@pytest.mark.parametrize("form, prefix", [("v1", "/v1/customers?"), ("bare", "/customers?")])
def test_a_walk_of_more_than_1000_customers_sees_each_once_in_both_next_link_forms(large, form, prefix):
    large.set_next_link_form(form)
    try:
        pages = walk(large, app_token(large), "/v1/customers", size=500)
    finally:
        large.set_next_link_form("v1")
    ids = [item["id"] for page in pages for item in page["items"]]
    assert [page["totalCount"] for page in pages] == [500, 500, 203]
    assert len(ids) == len(set(ids)) == 1_203
    assert ids == [item["id"] for item in large.customers()]
    for page in pages[:-1]:
        link = page["links"]["next"]
        assert link["uri"] == f"{prefix}size=500&seekOperation=Next"
        assert link["method"] == "GET"
        assert [header["key"] for header in link["headers"]] == ["MS-ContinuationToken"]
    assert "next" not in pages[-1]["links"]


def test_a_client_that_prepends_v1_to_a_v1_next_link_gets_404(simulator, token):
    first = get(simulator, "/v1/customers", token, size=10).json()
    link = first["links"]["next"]
    headers = {header["key"]: header["value"] for header in link["headers"]}
    assert get(simulator, "/v1/" + link["uri"], token, headers).status_code == 404


def test_list_items_carry_the_company_profile_and_no_billing_profile(simulator, token):
    page = get(simulator, "/v1/customers", token).json()
    assert page["totalCount"] == len(page["items"]) == 25
    assert page["attributes"] == {"objectType": "Collection"}
    for item in page["items"]:
        assert set(item) == {"id", "companyProfile", "relationshipToPartner", "links", "attributes"}
        assert item["id"] == item["companyProfile"]["tenantId"]
        assert GUID.match(item["id"])
        assert re.match(r"^[a-z0-9]+\.onmicrosoft\.com$", item["companyProfile"]["domain"])
        assert item["relationshipToPartner"] == "reseller"
        assert item["links"]["self"] == {"uri": f"/customers/{item['id']}", "method": "GET", "headers": []}
        assert item["attributes"] == {"objectType": "Customer"}


def test_a_customer_accepted_during_a_walk_is_seen_by_the_walker(simulator, token):
    added = []
    pages = walk(simulator, token, "/v1/customers", lambda _: added.append(simulator.accept_relationship()), size=10)
    ids = [item["id"] for page in pages for item in page["items"]]
    assert set(added) <= set(ids)
    assert ids[-len(added):] == added
    assert len(ids) == len(set(ids)) == 25 + len(added)


def test_a_customer_leaving_during_a_walk_makes_the_walker_skip_no_one(simulator, token):
    before = [item["id"] for item in simulator.customers()]
    leaving = []

    def remove_one_already_served(page_count: int) -> None:
        leaving.append(before[page_count * 10 - 1])  # the last customer of the page just served
        simulator.remove_relationship(leaving[-1])

    pages = walk(simulator, token, "/v1/customers", remove_one_already_served, size=10)
    ids = [item["id"] for page in pages for item in page["items"]]
    assert ids == before


def test_the_filter_finds_customers_whose_company_name_starts_with_a_value(simulator, token):
    name = simulator.customers()[3]["companyProfile"]["companyName"]
    prefix = name[:4].lower()
    query = json.dumps({"Field": "CompanyName", "Value": prefix, "Operator": "starts_with"})
    items = get(simulator, "/v1/customers", token, filter=query).json()["items"]
    expected = [c["id"] for c in simulator.customers() if c["companyProfile"]["companyName"].lower().startswith(prefix)]
    assert [item["id"] for item in items] == expected and expected


def test_the_filter_survives_paging(simulator, token):
    domain = simulator.customers()[0]["companyProfile"]["domain"][:2]
    query = json.dumps({"Field": "Domain", "Value": domain, "Operator": "starts_with"})
    pages = walk(simulator, token, "/v1/customers", filter=query, size=1)
    ids = [item["id"] for page in pages for item in page["items"]]
    assert ids == [c["id"] for c in simulator.customers() if c["companyProfile"]["domain"].startswith(domain)]


@pytest.mark.parametrize("query", [
    "not json",
    json.dumps({"Field": "Country", "Value": "DE", "Operator": "starts_with"}),
    json.dumps({"Field": "CompanyName", "Value": "A", "Operator": "equals"}),
    json.dumps(["CompanyName"]),
])
def test_a_bad_filter_is_400(simulator, token, query):
    response = get(simulator, "/v1/customers", token, filter=query)
    assert response.status_code == 400
    assert response.json()["source"] == "PartnerCenter"


def test_the_indirect_reseller_filter_needs_an_app_user_token(simulator, token):
    query = json.dumps({"Field": "IndirectReseller", "Value": "0", "Operator": "starts_with"})
    assert get(simulator, "/v1/customers", token, filter=query).status_code == 403
    assert get(simulator, "/v1/customers", app_user_token(simulator), filter=query).status_code == 200


@pytest.mark.parametrize("size", ["0", "-5", "ten", "1.5"])
def test_an_invalid_page_size_is_400(simulator, token, size):
    assert get(simulator, "/v1/customers", token, size=size).status_code == 400


def test_seek_next_without_a_continuation_token_is_400(simulator, token):
    assert get(simulator, "/v1/customers", token, size=10, seekOperation="Next").status_code == 400


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(garbage=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=80))
def test_a_garbled_continuation_token_is_400(simulator, token, garbage):
    response = get(simulator, "/v1/customers", token, {"MS-ContinuationToken": garbage}, size=10, seekOperation="Next")
    assert response.status_code == 400


def test_a_tampered_continuation_token_is_400(simulator, token):
    link = get(simulator, "/v1/customers", token, size=10).json()["links"]["next"]
    genuine = link["headers"][0]["value"]
    tampered = ("A" if genuine[0] != "A" else "B") + genuine[1:]
    assert get(simulator, link["uri"], token, {"MS-ContinuationToken": tampered}).status_code == 400


def test_a_continuation_token_of_another_partner_is_400(simulator, token):
    other = simulator.add_partner(customers=30)
    link = get(simulator, "/v1/customers", app_token(simulator, other), size=10).json()["links"]["next"]
    assert get(simulator, link["uri"], token, {"MS-ContinuationToken": link["headers"][0]["value"]}).status_code == 400


def test_the_full_customer_has_billing_profile_and_commerce_fields(simulator, token):
    tenant = simulator.customers()[0]["id"]
    customer = get(simulator, f"/v1/customers/{tenant}", token).json()
    assert customer["id"] == customer["companyProfile"]["tenantId"] == tenant
    assert GUID.match(customer["commerceId"])
    assert customer["billingProfile"] == simulator.billing_profile(tenant)
    assert customer["relationshipToPartner"] == "reseller"
    assert isinstance(customer["allowDelegatedAccess"], bool)
    assert customer["attributes"] == {"objectType": "Customer"}
    assert "associatedPartnerId" not in customer  # a direct partner's customer has no indirect reseller


def test_an_uppercase_tenant_id_finds_the_customer(simulator, token):
    tenant = simulator.customers()[0]["id"]
    assert get(simulator, f"/v1/customers/{tenant.upper()}", token).json()["id"] == tenant


@pytest.mark.parametrize("path", ["/v1/customers/{}", "/v1/customers/{}/profiles/billing"])
def test_a_tenant_id_that_is_not_a_guid_is_400_code_900118(simulator, token, path):
    response = get(simulator, path.format("not-a-guid"), token)
    assert response.status_code == 400
    assert response.json()["code"] == 900118


@pytest.mark.parametrize("path", ["/v1/customers/{}", "/v1/customers/{}/profiles/billing"])
def test_an_unknown_tenant_is_404_code_60003(simulator, token, path):
    response = get(simulator, path.format("00000000-0000-4000-8000-000000000001"), token)
    assert response.status_code == 404
    assert response.json()["code"] == 60003


@pytest.mark.parametrize("path", ["/v1/customers/{}", "/v1/customers/{}/profiles/billing"])
def test_after_the_relationship_ends_the_customer_answers_403_code_20002(simulator, token, path):
    tenant = simulator.customers()[2]["id"]
    simulator.remove_relationship(tenant)
    response = get(simulator, path.format(tenant), token)
    assert response.status_code == 403
    body = response.json()
    assert body["code"] == 20002 and body["source"] == "PartnerCenter" and body["description"]
    assert tenant not in [item["id"] for item in get(simulator, "/v1/customers", token).json()["items"]]


def test_another_partners_customer_answers_403(simulator, token):
    other = simulator.add_partner(customers=1)
    stranger = simulator.customers(other.tenant_id)[0]["id"]
    assert get(simulator, f"/v1/customers/{stranger}", token).json()["code"] == 20002


def test_a_returning_customer_is_listed_again_at_the_end(simulator, token):
    tenant = simulator.customers()[0]["id"]
    simulator.remove_relationship(tenant)
    simulator.accept_relationship(tenant_id=tenant)
    assert simulator.customers()[-1]["id"] == tenant
    assert get(simulator, f"/v1/customers/{tenant}/profiles/billing", token).status_code == 200


def test_billing_profiles_leave_missing_fields_absent_never_null(simulator, token):
    for item in simulator.customers():
        profile = get(simulator, f"/v1/customers/{item['id']}/profiles/billing", token).json()
        assert profile["attributes"]["objectType"] == "CustomerBillingProfile"
        assert profile["attributes"]["etag"]
        assert profile["links"]["self"]["uri"] == f"/customers/{item['id']}/profiles/billing"
        assert None not in profile.values()
        assert None not in profile["defaultAddress"].values()
        assert {"country", "city", "addressLine1", "postalCode"} <= set(profile["defaultAddress"])


def test_a_billing_profile_update_merges_removes_and_bumps_the_etag(simulator, token):
    tenant = simulator.accept_relationship(billing_profile={
        "firstName": "Zoë", "email": "zoe@example.com",
        "defaultAddress": {"phoneNumber": "+46 40 123 45", "addressLine2": "Våning 3"},
    })
    before = get(simulator, f"/v1/customers/{tenant}/profiles/billing", token).json()
    simulator.update_billing_profile(tenant, {
        "email": None, "lastName": "Ångström", "defaultAddress": {"phoneNumber": None, "city": "Malmö"},
    })
    after = get(simulator, f"/v1/customers/{tenant}/profiles/billing", token).json()
    assert "email" not in after and after["lastName"] == "Ångström" and after["firstName"] == "Zoë"
    assert "phoneNumber" not in after["defaultAddress"]
    assert after["defaultAddress"]["city"] == "Malmö"
    assert after["defaultAddress"]["addressLine2"] == "Våning 3"
    assert after["attributes"]["etag"] != before["attributes"]["etag"]


def test_a_billing_profile_update_rejects_unknown_fields_and_non_strings(simulator):
    tenant = simulator.customers()[0]["id"]
    with pytest.raises(ValueError):
        simulator.update_billing_profile(tenant, {"favouriteColour": "blue"})
    with pytest.raises(ValueError):
        simulator.update_billing_profile(tenant, {"defaultAddress": {"postalCode": 12345}})


def test_a_rename_changes_the_listed_company_name(simulator, token):
    tenant = simulator.customers()[1]["id"]
    simulator.rename_customer(tenant, "Fabrikam Nordic AB")
    listed = {item["id"]: item for item in get(simulator, "/v1/customers", token).json()["items"]}
    assert listed[tenant]["companyProfile"]["companyName"] == "Fabrikam Nordic AB"
