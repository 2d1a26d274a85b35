"""The indirect model: an indirect provider's resellers and the customers attributed to them."""

from __future__ import annotations

import json

import pytest

from tests.simulator.conftest import app_token, app_user_token, control, get, walk


@pytest.fixture
def provider(simulator):
    """An indirect provider with three resellers and 30 customers, and its app+user token."""
    partner = simulator.add_partner(customers=30, resellers=3)
    return partner, app_user_token(simulator, partner)


def test_the_provider_lists_its_resellers(simulator, provider):
    partner, token = provider
    page = get(simulator, "/v1/relationships", token, relationship_type="IsIndirectCloudSolutionProviderOf").json()
    assert [item["id"] for item in page["items"]] == list(partner.reseller_ids)
    for item in page["items"]:
        assert item["relationshipType"] == "is_indirect_cloud_solution_provider_of"
        assert item["state"] == "Active" and item["name"] and item["mpnId"].isdigit() and len(item["location"]) == 2
        assert item["attributes"] == {"objectType": "PartnerRelationship"}


def test_an_unknown_relationship_type_is_400(simulator, provider):
    _, token = provider
    assert get(simulator, "/v1/relationships", token, relationship_type="IsBestFriendOf").status_code == 400


def test_a_customer_names_its_reseller_and_the_relationship_endpoint_agrees(simulator, provider):
    partner, token = provider
    seen = set()
    for item in simulator.customers(partner.tenant_id):
        customer = get(simulator, f"/v1/customers/{item['id']}", token).json()
        answer = get(simulator, f"/v1/customers/{item['id']}/relationships", token)
        if "associatedPartnerId" in customer:
            seen.add(customer["associatedPartnerId"])
            relationships = answer.json()["items"]
            # "Get partners of a customer": the provider itself as well as the reseller.
            assert [(r["id"], r["relationshipType"]) for r in relationships] == [
                (partner.tenant_id, "is_indirect_cloud_solution_provider_of"),
                (customer["associatedPartnerId"], "is_indirect_reseller_of"),
            ]
        else:
            assert answer.status_code == 200 and answer.json() is None  # null when there is none
    assert seen == set(partner.reseller_ids)


def _direct_customer(simulator, partner):
    return next(c.tenant_id for c in simulator.account(partner.tenant_id).listed() if not c.indirect_reseller_id)


def test_a_customer_without_reseller_can_be_answered_empty_or_as_an_empty_collection(simulator, provider):
    partner, token = provider
    tenant = _direct_customer(simulator, partner)
    simulator.set_no_reseller_answer("empty")
    answer = get(simulator, f"/v1/customers/{tenant}/relationships", token)
    assert answer.status_code == 200 and answer.content == b""
    simulator.set_no_reseller_answer("collection")
    assert get(simulator, f"/v1/customers/{tenant}/relationships", token).json()["items"] == []
    with pytest.raises(ValueError):
        simulator.set_no_reseller_answer("silence")


def test_the_reseller_list_can_be_paged_with_next_links(simulator):
    partner = simulator.add_partner(customers=5, resellers=5)
    token = app_user_token(simulator, partner)
    simulator.set_relationship_page_size(2)
    pages = walk(simulator, token, "/v1/relationships", relationship_type="IsIndirectCloudSolutionProviderOf")
    assert [len(page["items"]) for page in pages] == [2, 2, 1]
    assert [item["id"] for page in pages for item in page["items"]] == list(partner.reseller_ids)
    assert pages[0]["links"]["next"]["uri"].startswith("/v1/relationships?relationship_type=")


def test_a_reseller_relationship_can_become_inactive(simulator, provider):
    partner, token = provider
    reseller = partner.reseller_ids[1]
    response = control(simulator, "PATCH", f"/resellers/{reseller}",
                       {"state": "Inactive", "partnerTenantId": partner.tenant_id})
    assert response.status_code == 200
    page = get(simulator, "/v1/relationships", token, relationship_type="IsIndirectCloudSolutionProviderOf").json()
    assert {item["id"]: item["state"] for item in page["items"]}[reseller] == "Inactive"


def test_the_indirect_reseller_filter_lists_one_resellers_customers(simulator, provider):
    partner, token = provider
    reseller = partner.reseller_ids[0]
    query = json.dumps({"Field": "IndirectReseller", "Value": reseller, "Operator": "starts_with"})
    pages = walk(simulator, token, "/v1/customers", filter=query, size=4)
    listed = [item["id"] for page in pages for item in page["items"]]
    account = simulator.account(partner.tenant_id)
    assert listed == [c.tenant_id for c in account.listed() if c.indirect_reseller_id == reseller]
    assert listed


def test_the_indirect_provider_filter_lists_customers_that_came_through_resellers(simulator, provider):
    partner, token = provider
    query = json.dumps(
        {"Field": "IndirectCloudSolutionProvider", "Value": partner.tenant_id, "Operator": "starts_with"}
    )
    listed = [item["id"] for item in get(simulator, "/v1/customers", token, filter=query).json()["items"]]
    account = simulator.account(partner.tenant_id)
    assert listed == [c.tenant_id for c in account.listed() if c.indirect_reseller_id]


def test_a_customer_accepted_through_a_reseller_is_attributed_to_it(simulator, provider):
    partner, token = provider
    tenant = simulator.accept_relationship(
        partner_tenant_id=partner.tenant_id, indirect_reseller_id=partner.reseller_ids[2]
    )
    assert get(simulator, f"/v1/customers/{tenant}", token).json()["associatedPartnerId"] == partner.reseller_ids[2]


def test_a_reseller_the_provider_does_not_have_is_refused(simulator, provider):
    partner, _ = provider
    with pytest.raises(ValueError):
        simulator.accept_relationship(
            partner_tenant_id=partner.tenant_id, indirect_reseller_id="00000000-0000-4000-8000-000000000009"
        )


def test_customer_relationships_need_an_app_user_token(simulator, provider):
    partner, _ = provider
    tenant = simulator.customers(partner.tenant_id)[0]["id"]
    response = get(simulator, f"/v1/customers/{tenant}/relationships", app_token(simulator, partner))
    assert response.status_code == 403
    assert response.json()["code"] == 1002
