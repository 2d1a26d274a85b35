"""Scenario controls on the list order: customers inserted mid-list, relationships restored,
continuation tokens that stop being accepted."""

from __future__ import annotations

import datetime
import json

from tests.simulator.conftest import control, get, walk


def _ids(pages) -> list[str]:
    return [item["id"] for page in pages for item in page["items"]]


def _first_page_and_link(sim, token, size):
    page = get(sim, "/v1/customers", token, size=size).json()
    link = page["links"]["next"]
    return page, link["uri"], {header["key"]: header["value"] for header in link["headers"]}


def test_a_customer_inserted_before_the_walk_position_is_missed_by_that_walk_only(simulator, token):
    before = [item["id"] for item in simulator.customers()]
    added = []
    # After the first page (5 customers) a customer joins at position 0, behind the walk.
    pages = walk(simulator, token, "/v1/customers", lambda _: added or added.append(
        simulator.accept_relationship(position=0)), size=5)
    assert _ids(pages) == before
    assert [item["id"] for item in simulator.customers()] == added + before
    assert _ids(walk(simulator, token, "/v1/customers", size=5)) == added + before


def test_a_customer_inserted_ahead_of_the_walk_is_seen_in_its_place(simulator, token):
    before = [item["id"] for item in simulator.customers()]
    target = before[12]
    added = []
    pages = walk(simulator, token, "/v1/customers", lambda _: added or added.append(
        simulator.accept_relationship(before=target)), size=5)
    expected = before[:12] + added + before[12:]
    assert _ids(pages) == expected == [item["id"] for item in simulator.customers()]


def test_repeated_insertion_at_one_place_keeps_the_order_exact(simulator, token):
    before = [item["id"] for item in simulator.customers()]
    inserted = [simulator.accept_relationship(position=3) for _ in range(60)]
    assert _ids(walk(simulator, token, "/v1/customers", size=7)) == before[:3] + inserted[::-1] + before[3:]


def test_a_position_past_the_end_appends_and_a_bad_one_is_400_over_http(simulator):
    tenant = control(simulator, "POST", "/customers", {"position": 10_000}).json()["tenantId"]
    assert simulator.customers()[-1]["id"] == tenant
    first = control(simulator, "POST", "/customers", {"position": 0}).json()["tenantId"]
    assert simulator.customers()[0]["id"] == first
    for bad in ({"position": -1}, {"position": "first"}, {"position": 1, "before": first}):
        response = control(simulator, "POST", "/customers", bad)
        assert response.status_code == 400, bad
    missing = control(simulator, "POST", "/customers", {"before": "2f1e1e51-8b55-4d41-9d3c-5d1c4c1b9a10"})
    assert missing.status_code == 404


def test_a_removed_customer_brought_back_is_listed_in_its_place_and_answers_again(simulator, token):
    before = [item["id"] for item in simulator.customers()]
    tenant = before[4]
    simulator.remove_relationship(tenant)
    assert get(simulator, f"/v1/customers/{tenant}", token).json()["code"] == 20002
    response = control(simulator, "POST", f"/customers/{tenant}/restore")
    assert response.status_code == 200, response.text
    assert [item["id"] for item in simulator.customers()] == before
    assert get(simulator, f"/v1/customers/{tenant}", token).status_code == 200
    assert get(simulator, f"/v1/customers/{tenant}/profiles/billing", token).status_code == 200

    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    records = [record for page in walk(simulator, token, "/v1/auditrecords", startDate=today)
               for record in page["items"] if record["customerId"] == tenant]
    assert [record["operationType"] for record in records] == ["remove_partner_customer_relationship", "add_customer"]
    restored = records[-1]
    assert json.loads(restored["resourceOldValue"])["RelationshipToPartner"] == "none"
    assert json.loads(restored["resourceNewValue"])["RelationshipToPartner"] == "reseller"


def test_a_restored_customer_can_be_placed_elsewhere_and_only_a_removed_one_can_be_restored(simulator):
    listed = [item["id"] for item in simulator.customers()]
    simulator.remove_relationship(listed[2])
    simulator.restore_relationship(listed[2], position=0)
    assert [item["id"] for item in simulator.customers()] == [listed[2]] + listed[:2] + listed[3:]
    assert control(simulator, "POST", f"/customers/{listed[5]}/restore").status_code == 400
    stranger = control(simulator, "POST", "/customers/7d0fc6c4-2d59-4bd4-8f37-0a4b4ef9b6e3/restore")
    assert stranger.status_code == 404


def test_expired_continuation_tokens_make_a_resumed_walk_start_again(simulator, token):
    _, uri, headers = _first_page_and_link(simulator, token, 5)
    assert get(simulator, uri, token, headers).status_code == 200
    assert control(simulator, "POST", "/expire-continuation-tokens").status_code == 204
    refused = get(simulator, uri, token, headers)
    assert refused.status_code == 400
    body = refused.json()
    assert body["code"] == 400 and "continuation token" in body["description"]
    assert body["source"] == "PartnerCenter"
    # A new walk gets new tokens, which work.
    assert len(_ids(walk(simulator, token, "/v1/customers", size=5))) == len(simulator.customers())


def test_expiring_continuation_tokens_also_stops_a_resumed_activity_log_walk(simulator, token):
    start = (datetime.date.today() - datetime.timedelta(days=25)).isoformat()
    link = get(simulator, "/v1/auditrecords", token, startDate=start, size=3).json()["links"]["next"]
    headers = {header["key"]: header["value"] for header in link["headers"]}
    simulator.expire_continuation_tokens()
    assert get(simulator, link["uri"], token, headers).status_code == 400
