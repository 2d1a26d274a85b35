"""The activity log (audit records): date window rules, paging, and the records scenarios write."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from tests.simulator.conftest import get, walk

def _days_ago(days: int) -> str:
    # Read the clock at each call: a test session may cross midnight UTC.
    return str(datetime.now(timezone.utc).date() - timedelta(days=days))


def _records(sim, token, **params):
    return [record for page in walk(sim, token, "/v1/auditrecords", **params) for record in page["items"]]


def test_the_seeded_estate_was_added_over_the_last_twenty_days(simulator, token):
    records = _records(simulator, token, startDate=_days_ago(30))
    assert [record["customerId"] for record in records] == [item["id"] for item in simulator.customers()]
    assert {record["operationType"] for record in records} == {"add_customer"}
    dates = [datetime.fromisoformat(record["operationDate"]) for record in records]
    assert dates == sorted(dates)
    now = datetime.now(timezone.utc)
    assert all(now - timedelta(days=21) < moment < now for moment in dates)
    assert dates[-1] - dates[0] > timedelta(days=15)


def test_a_record_has_the_documented_fields(simulator, token):
    record = _records(simulator, token, startDate=_days_ago(30))[0]
    assert record["partnerId"] == simulator.partner_tenant_id
    assert record["resourceType"] == "customer"
    assert record["operationStatus"] == "succeeded"
    assert record["operationDate"].endswith("Z")
    assert record["attributes"] == {"objectType": "AuditRecord"}
    assert "resourceOldValue" not in record  # nothing existed before the customer was added
    new_value = json.loads(record["resourceNewValue"])
    assert new_value["Id"] == record["customerId"]
    assert new_value["CompanyProfile"]["CompanyName"] == record["customerName"]
    assert {"key": "CustomerId", "value": record["customerId"]} in record["customizedData"]


@pytest.mark.parametrize("start, end", [
    (31, 0),  # a 31-day span
    (91, 85),  # older than 90 days
    (3, 5),  # ends before it starts
    ("yesterday", None),
    (None, 1),
])
def test_a_window_outside_the_rules_is_400(simulator, token, start, end):
    start, end = (_days_ago(day) if isinstance(day, int) else day for day in (start, end))
    params = {key: value for key, value in (("startDate", start), ("endDate", end)) if value is not None}
    response = get(simulator, "/v1/auditrecords", token, **params)
    assert response.status_code == 400
    assert response.json()["description"]


def test_a_window_of_exactly_30_days_back_to_day_90_is_accepted(simulator, token):
    assert get(simulator, "/v1/auditrecords", token, startDate=_days_ago(90), endDate=_days_ago(60)).status_code == 200


def test_the_end_date_covers_its_whole_day_and_date_times_are_accepted(simulator, token):
    tenant = simulator.customers()[0]["id"]
    simulator.rename_customer(tenant, "Renamed Today Ltd")
    for start, end in ((_days_ago(0), _days_ago(0)), (f"{_days_ago(0)}T23:59:59Z", f"{_days_ago(0)}T00:00:00Z")):
        records = _records(simulator, token, startDate=start, endDate=end)
        assert [r["operationType"] for r in records][-1] == "update_customer_partner_contract_company_name"


def test_a_window_before_any_activity_is_empty(simulator, token):
    page = get(simulator, "/v1/auditrecords", token, startDate=_days_ago(60), endDate=_days_ago(40)).json()
    assert page["totalCount"] == 0 and page["items"] == [] and "next" not in page["links"]


def test_records_are_paged_with_continuation_tokens(simulator, token):
    pages = walk(simulator, token, "/v1/auditrecords", startDate=_days_ago(30), size=10)
    assert [page["totalCount"] for page in pages] == [10, 10, 5]
    link = pages[0]["links"]["next"]
    assert link["uri"] == "/v1/auditrecords?size=10&seekOperation=Next"
    assert link["headers"][0]["key"] == "MS-ContinuationToken"
    assert pages[0]["continuationToken"] == link["headers"][0]["value"]
    ids = [record["id"] for page in pages for record in page["items"]]
    assert len(ids) == len(set(ids)) == 25


def test_records_written_during_a_walk_are_seen_when_the_window_covers_today(simulator, token):
    added = []
    pages = walk(simulator, token, "/v1/auditrecords", lambda _: added.append(simulator.accept_relationship()),
                 startDate=_days_ago(30), size=10)
    customers = [record["customerId"] for page in pages for record in page["items"]]
    assert customers[-len(added):] == added


def test_scenarios_write_their_operation_types_with_pascal_case_values(simulator, token):
    tenant = simulator.customers()[4]["id"]
    old_email = simulator.billing_profile(tenant).get("email")
    started = datetime.now(timezone.utc)
    simulator.update_billing_profile(tenant, {"email": "billing@new.example", "defaultAddress": {"city": "Zürich"}})
    simulator.rename_customer(tenant, "Zürich Holdings AG")
    simulator.remove_relationship(tenant)
    added = simulator.accept_relationship(company_name="Neu GmbH")

    records = [
        record for record in _records(simulator, token, startDate=_days_ago(0))
        if datetime.fromisoformat(record["operationDate"]) >= started  # seeded records may be dated today too
    ]
    assert [(r["operationType"], r["customerId"]) for r in records] == [
        ("update_customer_billing_profile", tenant),
        ("update_customer_partner_contract_company_name", tenant),
        ("remove_partner_customer_relationship", tenant),
        ("add_customer", added),
    ]
    billing = records[0]
    old, new = json.loads(billing["resourceOldValue"]), json.loads(billing["resourceNewValue"])
    assert old.get("Email") == old_email and new["Email"] == "billing@new.example"
    assert new["DefaultAddress"]["City"] == "Zürich"
    assert new["Attributes"]["Etag"] != old["Attributes"]["Etag"]
    rename = records[1]
    assert json.loads(rename["resourceNewValue"])["CompanyName"] == "Zürich Holdings AG"
    assert rename["customerName"] == "Zürich Holdings AG"
    assert json.loads(records[2]["resourceNewValue"])["RelationshipToPartner"] == "none"


def test_the_filter_narrows_records_to_one_customer(simulator, token):
    tenant = simulator.customers()[7]["id"]
    query = json.dumps({"Field": "CustomerId", "Value": tenant, "Operator": "equals"})
    records = _records(simulator, token, startDate=_days_ago(30), filter=query)
    assert [record["customerId"] for record in records] == [tenant]


def test_the_bare_next_link_form_applies_to_audit_pages(simulator, token):
    simulator.set_next_link_form("bare")
    link = get(simulator, "/v1/auditrecords", token, startDate=_days_ago(30), size=5).json()["links"]["next"]
    assert link["uri"] == "/auditrecords?size=5&seekOperation=Next"
    headers = {header["key"]: header["value"] for header in link["headers"]}
    assert get(simulator, link["uri"], token, headers).json()["totalCount"] == 5
