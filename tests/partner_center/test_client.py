"""The Partner Center client against the simulator, over real HTTPS."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest

from shared.partner_center import (
    AuthenticationError,
    BadRequestError,
    CustomerNotFoundError,
    DeadlineExceeded,
    MalformedResponseError,
    RelationshipEndedError,
    ThrottledError,
    TransientError,
)


@pytest.fixture
def big_simulator(tmp_path_factory, monkeypatch):
    from devstack.simulator import PartnerCenterSimulator

    with PartnerCenterSimulator(customers=1_203, seed=3, state_dir=tmp_path_factory.mktemp("big")) as sim:
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", sim.ca_path)
        yield sim


def _client(sim, **kwargs):
    from shared.partner_center import AppTokenProvider, LocalRequestBudget, PartnerCenterClient, RetryPolicy

    tokens = AppTokenProvider(sim.url, sim.partner_tenant_id, sim.client_id, client_secret=sim.client_secret)
    return PartnerCenterClient(sim.url, tokens, LocalRequestBudget(kwargs.pop("per_minute", 10_000)),
                               policy=RetryPolicy(backoff_initial=0.01, backoff_max=0.05), **kwargs)


@pytest.mark.parametrize("form", ["v1", "bare"])
def test_full_list_walk_follows_next_links_in_both_forms(big_simulator, form):
    big_simulator.set_next_link_form(form)
    client = _client(big_simulator)
    pages = list(client.iter_customer_pages(page_size=500))
    ids = [c.tenant_id for page in pages for c in page.customers]
    assert len(pages) == 3
    assert len(ids) == len(set(ids)) == 1_203
    assert set(ids) == {c["id"] for c in big_simulator.customers()}
    assert big_simulator.counters()["list_customers"] == 3
    assert client.stats.by_endpoint["list_customers"] == 3


def test_list_items_carry_identity_and_no_contacts(make_client, simulator):
    customer = next(make_client().iter_customers())
    served = {c["id"]: c for c in simulator.customers()}[customer.tenant_id]
    assert customer.company_name == served["companyProfile"]["companyName"].strip()
    assert customer.domain == served["companyProfile"]["domain"].strip()
    assert customer.relationship_to_partner == "reseller"
    assert "billingProfile" not in served


def test_billing_profile_keeps_missing_fields_absent(make_client, simulator):
    tenant = simulator.accept_relationship(billing_profile={
        "firstName": "Zoë", "lastName": "Ångström", "email": "zoe@example.com",
        "defaultAddress": {"country": "SE", "city": "Malmö", "addressLine1": "Storgatan 1", "postalCode": "211 34"},
    })
    simulator.update_billing_profile(tenant, {"defaultAddress": {"phoneNumber": None, "addressLine2": None}})
    profile = make_client().get_billing_profile(tenant)
    assert profile["firstName"] == "Zoë"
    assert "phoneNumber" not in profile["defaultAddress"]
    assert "addressLine2" not in profile["defaultAddress"]


def test_relationship_ended_is_a_typed_error(make_client, simulator):
    tenant = simulator.customers()[0]["id"]
    simulator.remove_relationship(tenant)
    with pytest.raises(RelationshipEndedError) as caught:
        make_client().get_billing_profile(tenant)
    assert caught.value.status == 403 and caught.value.code == "20002"
    assert caught.value.request_id


def test_unknown_customer_is_not_found(make_client):
    with pytest.raises(CustomerNotFoundError) as caught:
        make_client().get_customer("00000000-0000-0000-0000-000000000001")
    assert caught.value.code == "60003"


def test_a_tenant_id_that_is_not_a_guid_never_reaches_the_api(make_client, simulator):
    with pytest.raises(BadRequestError):
        make_client().get_billing_profile("x' or '1'='1")
    assert simulator.counters()["billing_profile"] == 0


def test_429_waits_retry_after_then_succeeds(make_client, simulator):
    tenant = simulator.customers()[0]["id"]
    simulator.inject("billing_profile", "status", status=429, retry_after=1, times=1)
    client = make_client()
    started = time.monotonic()
    assert client.get_billing_profile(tenant)["attributes"]["objectType"] == "CustomerBillingProfile"
    assert time.monotonic() - started >= 0.9
    assert client.stats.throttled == 1


def test_429_beyond_the_time_budget_gives_up_with_a_typed_error(make_client, simulator):
    tenant = simulator.customers()[0]["id"]
    simulator.inject("billing_profile", "status", status=429, retry_after=30, times=5)
    client = make_client(deadline=time.monotonic() + 2)
    started = time.monotonic()
    with pytest.raises(ThrottledError) as caught:
        client.get_billing_profile(tenant)
    assert time.monotonic() - started < 2
    assert caught.value.retry_after == 30


def test_5xx_is_retried_with_the_same_request_id(make_client, simulator):
    tenant = simulator.customers()[0]["id"]
    simulator.inject("billing_profile", "status", status=503, times=2)
    client = make_client()
    client.get_billing_profile(tenant)
    log = [entry for entry in simulator.request_log() if entry[2] == "billing_profile"]
    assert [entry[3] for entry in log] == [503, 503, 200]
    assert client.stats.retried == 2


def test_5xx_burst_is_given_up_after_bounded_retries(make_client, simulator):
    tenant = simulator.customers()[0]["id"]
    simulator.inject("billing_profile", "status", status=500, times=10)
    with pytest.raises(TransientError) as caught:
        make_client().get_billing_profile(tenant)
    assert caught.value.status == 500
    assert simulator.counters()["billing_profile"] == 4


def test_dropped_connection_is_retried(make_client, simulator):
    tenant = simulator.customers()[0]["id"]
    simulator.inject("billing_profile", "drop", times=1)
    assert make_client().get_billing_profile(tenant)["id"]


def test_expired_token_is_refreshed_once(make_client, simulator):
    client = make_client()
    tenant = simulator.customers()[0]["id"]
    client.get_billing_profile(tenant)
    simulator.expire_tokens()
    client.get_billing_profile(tenant)
    assert simulator.counters()["token"] == 2


def test_a_fresh_token_is_handed_out_without_asking_msal_again(make_client, simulator, monkeypatch):
    client = make_client()
    tenant = simulator.customers()[0]["id"]
    client.get_billing_profile(tenant)
    app = client.tokens.msal_app()
    asked = []
    real = app.acquire_token_for_client
    monkeypatch.setattr(app, "acquire_token_for_client", lambda **kw: asked.append(kw) or real(**kw))
    for _ in range(20):
        client.get_billing_profile(tenant)
    assert asked == [] and simulator.counters()["token"] == 1


def test_wrong_secret_is_an_authentication_error(make_client):
    with pytest.raises(AuthenticationError):
        next(make_client(secret="not-the-secret").iter_customers())


def test_garbage_json_names_the_page(make_client, simulator):
    simulator.inject("list_customers", "malformed", times=1)
    with pytest.raises(MalformedResponseError, match="customer list page 1"):
        list(make_client().iter_customers())


def test_page_without_items_names_the_page(make_client, simulator):
    simulator.inject("list_customers", "body", body={"totalCount": 0, "links": {}}, times=1)
    with pytest.raises(MalformedResponseError, match="'items' is missing"):
        list(make_client().iter_customer_pages())


def test_broken_items_are_reported_with_their_tenant_id(make_client, simulator):
    good = simulator.customers()[0]
    broken = {"id": "0f0e0d0c-0b0a-0908-0706-050403020100", "companyProfile": "not an object"}
    simulator.inject("list_customers", "body", body={"totalCount": 3, "items": [good, broken, 42], "links": {}}, times=1)
    page = next(make_client().iter_customer_pages())
    assert [c.tenant_id for c in page.customers] == [good["id"]]
    assert [m.tenant_id for m in page.malformed] == ["0f0e0d0c-0b0a-0908-0706-050403020100", ""]
    assert "companyProfile" in page.malformed[0].reason


def test_a_next_link_that_loops_is_refused(make_client, simulator):
    loop = {"uri": "/v1/customers?size=1&seekOperation=Next", "method": "GET",
            "headers": [{"key": "MS-ContinuationToken", "value": "same"}]}
    simulator.inject("list_customers", "body", body={"totalCount": 0, "items": [], "links": {"next": loop}}, times=3)
    with pytest.raises(MalformedResponseError, match="paging loop"):
        list(make_client().iter_customer_pages())


def test_request_budget_is_never_exceeded(trust_simulator):
    sim = trust_simulator
    sim.set_requests_per_minute(20)
    client = _client(sim, per_minute=20)
    tenants = [c["id"] for c in sim.customers()][:25]
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        client.deadline = time.monotonic() + 3
        for tenant in tenants:
            client.get_billing_profile(tenant)
    assert time.monotonic() - started < 5
    assert sim.counters()["throttled"] == 0
    assert sim.peak_requests(60) <= 20


def test_audit_records_are_paged_across_30_day_windows(make_client, simulator):
    for _ in range(3):
        simulator.accept_relationship()
    client = make_client()
    since = datetime.now(timezone.utc) - timedelta(days=75)
    records = list(client.iter_audit_records(since, page_size=5))
    adds = [r for r in records if r.operation_type == "add_customer"]
    assert len(adds) >= 25 + 3
    assert len({r.id for r in records}) == len(records)
    assert simulator.counters()["audit_records"] >= 3  # three windows, several pages
    assert all(r.operation_date >= since for r in records)
