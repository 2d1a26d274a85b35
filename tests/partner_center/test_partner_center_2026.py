"""Partner Center as it is in 2026, client against simulator over real HTTPS: MFA and retired
audiences, throttling, MS-RequestId, national clouds, relationship kinds, indirect resellers and
list anomalies."""

from __future__ import annotations

import time

import pytest

from shared.partner_center import (
    CHINA,
    PUBLIC,
    AppTokenProvider,
    AuthenticationError,
    Cloud,
    ContinuationExpiredError,
    IncompleteListError,
    LocalRequestBudget,
    MfaRequiredError,
    PartnerCenterClient,
    RetryPolicy,
    UserTokenProvider,
    WrongTokenAudienceError,
    is_synced_kind,
)
from shared.settings import Settings

FAST = RetryPolicy(backoff_initial=0.01, backoff_max=0.05, retry_after_cap=5.0, throttle_default_wait=0.05,
                   throttle_backoff_initial=0.4, throttle_backoff_max=2.0)


class MemoryVault:
    """A refresh-token vault in memory, counting what it was asked."""

    def __init__(self, token: str) -> None:
        self.token, self.loads, self.saves = token, 0, 0

    def load(self) -> str:
        self.loads += 1
        return self.token

    def save(self, refresh_token: str) -> None:
        self.saves += 1
        self.token = refresh_token


def _client(sim, tokens=None, *, sleeps=None, cloud=PUBLIC):
    tokens = tokens or AppTokenProvider(sim.url, sim.partner_tenant_id, sim.client_id,
                                        client_secret=sim.client_secret, cloud=cloud)
    sleep = sleeps.append if sleeps is not None else time.sleep
    return PartnerCenterClient(sim.url, tokens, LocalRequestBudget(10_000), policy=FAST, sleep=sleep)


def _user_client(sim, partner):
    vault = MemoryVault(sim.issue_refresh_token(partner.tenant_id))
    tokens = UserTokenProvider(sim.url, partner.tenant_id, partner.client_id, partner.client_secret, vault)
    return _client(sim, tokens), vault


# --- 1. MFA and the retired audience -------------------------------------------------------------


def test_an_app_user_token_without_mfa_is_a_typed_error_and_the_refresh_token_is_not_redeemed_again(trust_simulator):
    sim = trust_simulator
    partner = sim.add_partner(customers=4, resellers=2)
    sim.issue_tokens_without_mfa(partner_tenant_id=partner.tenant_id)
    client, vault = _user_client(sim, partner)
    sim.reset_counters()
    with pytest.raises(MfaRequiredError) as caught:
        list(client.iter_indirect_resellers())
    assert isinstance(caught.value, AuthenticationError)
    assert str(caught.value).startswith("sign in again with MFA")
    assert caught.value.status == 401 and caught.value.code == "900421"
    assert partner.tenant_id in str(caught.value)
    assert sim.counters()["token"] == 1 and vault.loads == 1  # one redemption, no refresh after the 401
    # Every later call of this run fails at once: no token request, no API call.
    with pytest.raises(MfaRequiredError):
        client.get_customer_indirect_reseller(sim.customers(partner.tenant_id)[0]["id"])
    assert sim.counters()["token"] == 1 and sim.counters()["partner_relationships"] == 1
    assert sim.counters()["customer_relationships"] == 0


def test_after_a_new_mfa_sign_in_the_account_works_again(trust_simulator):
    sim = trust_simulator
    partner = sim.add_partner(customers=4, resellers=2)
    sim.issue_tokens_without_mfa(partner_tenant_id=partner.tenant_id)
    with pytest.raises(MfaRequiredError):
        list(_user_client(sim, partner)[0].iter_indirect_resellers())
    sim.issue_tokens_without_mfa(False, partner_tenant_id=partner.tenant_id)
    assert list(_user_client(sim, partner)[0].iter_indirect_resellers()) == list(partner.reseller_ids)


def test_a_token_of_the_retired_graph_audience_is_a_wrong_audience_error_without_a_refresh(trust_simulator):
    sim = trust_simulator
    graph = Cloud("graph", sim.url, sim.url, "https://graph.windows.net")
    client = _client(sim, cloud=graph)
    sim.reset_counters()
    with pytest.raises(WrongTokenAudienceError) as caught:
        next(client.iter_customers())
    assert str(caught.value).startswith("wrong token audience")
    assert caught.value.code == "900420" and "graph.windows.net" in str(caught.value)
    assert sim.counters()["token"] == 1 and sim.counters()["list_customers"] == 1


def test_the_older_mfa_refusal_code_is_recognised_too(trust_simulator):
    sim = trust_simulator
    sim.inject("list_customers", "status", status=401,
               body={"code": 10001, "description": "Authentication failed. MFA required.", "source": "PartnerCenter"})
    with pytest.raises(MfaRequiredError):
        next(_client(sim).iter_customers())


def test_any_other_401_still_gets_one_token_refresh(trust_simulator):
    sim = trust_simulator
    client = _client(sim)
    next(client.iter_customers())
    sim.expire_tokens()
    sim.reset_counters()
    assert next(client.iter_customers())
    assert sim.counters()["token"] == 1 and sim.counters()["list_customers"] == 2


# --- 2. Throttling -------------------------------------------------------------------------------


def test_the_first_429_waits_retry_after_and_later_ones_back_off_exponentially_with_it_as_floor(trust_simulator):
    sim = trust_simulator
    sim.inject("list_customers", "status", status=429, retry_after=0.05, times=3)
    sleeps: list[float] = []
    customers = list(_client(sim, sleeps=sleeps).iter_customers())
    assert len(customers) == len(sim.customers())
    assert sleeps[0] == pytest.approx(0.05)  # Retry-After as given
    assert 0.2 <= sleeps[1] <= 0.4  # second in a row: 0.4 s with jitter, never under Retry-After
    assert 0.4 <= sleeps[2] <= 0.8
    assert sim.counters()["faults"] == 3


@pytest.mark.slow
def test_retry_after_as_an_http_date_is_honoured(trust_simulator):
    sim = trust_simulator
    sim.inject("list_customers", "status", status=429, retry_after=3, retry_after_form="http-date")
    sleeps: list[float] = []
    client = _client(sim, sleeps=sleeps)
    started = time.monotonic()
    next(client.iter_customers())
    # The date has whole-second precision: "3 s from now" is 2 to 3 s away when the client reads it
    # (a misread header would fall back to the 0.05 s default).
    assert 1.9 <= sleeps[0] <= 3.1
    assert time.monotonic() - started >= sleeps[0] - 0.1  # the budget paused the next call for it


def test_a_429_without_retry_after_waits_the_default(trust_simulator):
    sim = trust_simulator
    sim.inject("list_customers", "status", status=429, retry_after_form="none")
    sleeps: list[float] = []
    next(_client(sim, sleeps=sleeps).iter_customers())
    assert sleeps == [pytest.approx(0.05)]


def test_a_success_between_429s_starts_the_count_again(trust_simulator):
    sim = trust_simulator
    sleeps: list[float] = []
    client = _client(sim, sleeps=sleeps)
    for _ in range(2):
        sim.inject("list_customers", "status", status=429, retry_after=0.05)
        next(client.iter_customers())
    assert sleeps == [pytest.approx(0.05), pytest.approx(0.05)]


# --- 3. MS-RequestId -----------------------------------------------------------------------------


def test_a_request_id_is_reused_only_after_no_answer_and_the_correlation_id_stays(trust_simulator):
    sim = trust_simulator
    tenant = sim.customers()[0]["id"]
    sim.inject("billing_profile", "drop", tenant_id=tenant)  # no (complete) answer: retry with the same id
    sim.inject("billing_profile", "status", status=503, tenant_id=tenant)  # an answer: the next try gets a new id
    client = _client(sim)
    sim.reset_counters()
    client.get_billing_profile(tenant)
    client.get_billing_profile(tenant)
    seen = [(status, request_id, correlation) for endpoint, status, request_id, correlation in sim.request_ids()]
    assert [status for status, _, _ in seen] == [200, 503, 200, 200]
    ids = [request_id for _, request_id, _ in seen]
    assert ids[0] == ids[1]  # after the dropped connection
    assert ids[2] != ids[1]  # after the 503
    assert ids[3] not in ids[:3]  # a new call
    assert {correlation for _, _, correlation in seen} == {client.correlation_id}


def test_a_retry_after_a_429_gets_a_new_request_id(trust_simulator):
    sim = trust_simulator
    sim.inject("list_customers", "status", status=429, retry_after=0.01)
    sim.reset_counters()
    next(_client(sim).iter_customers())
    first, second = [request_id for _, _, request_id, _ in sim.request_ids()]
    assert first != second


# --- 4. National clouds --------------------------------------------------------------------------


def test_the_china_cloud_derives_urls_and_audience_and_explicit_urls_still_win():
    china = Settings.from_env({"PARTNER_CENTER_CLOUD": "china"})
    assert (china.api_url, china.authority_url) == (
        "https://partner.partnercenterapi.microsoftonline.cn", "https://login.chinacloudapi.cn")
    assert china.cloud.app_scope == "https://partner.partnercenterapi.microsoftonline.cn/.default"
    assert china.cloud.user_scope == "https://partner.partnercenterapi.microsoftonline.cn/user_impersonation"
    local = Settings.from_env({"PARTNER_CENTER_CLOUD": "China", "PARTNER_CENTER_API_URL": "https://127.0.0.1:9/",
                               "PARTNER_CENTER_AUTHORITY_URL": "https://127.0.0.1:9"})
    assert local.cloud is CHINA and local.api_url == local.authority_url == "https://127.0.0.1:9"
    assert Settings.from_env({}).cloud is PUBLIC


def test_a_partner_in_the_china_cloud_gets_china_audience_tokens_and_a_public_token_is_refused(trust_simulator):
    sim = trust_simulator
    sim.set_cloud("china")
    try:
        settings = Settings.from_env({"PARTNER_CENTER_CLOUD": "china", "PARTNER_CENTER_API_URL": sim.url,
                                      "PARTNER_CENTER_AUTHORITY_URL": sim.url})
        assert len(list(_client(sim, cloud=settings.cloud).iter_customers())) == len(sim.customers())
        with pytest.raises(AuthenticationError) as caught:
            next(_client(sim, cloud=PUBLIC).iter_customers())
        assert caught.value.status == 401 and "audience" in str(caught.value)
    finally:
        sim.set_cloud("public")


# --- 5. Relationship kinds -----------------------------------------------------------------------


def test_every_relationship_kind_is_read_and_only_the_configured_ones_are_synced(trust_simulator):
    sim = trust_simulator
    partner = sim.add_partner(customers=30, other_relationships=40)
    client = AppTokenProvider(sim.url, partner.tenant_id, partner.client_id, client_secret=partner.client_secret)
    customers = list(_client(sim, client).iter_customers(page_size=13))
    assert len(customers) == 70
    kinds = {customer.relationship_kind for customer in customers}
    assert {"reseller", "advisor", "microsoft_support", "syndication", "delegated_admin_only"} <= kinds
    default = Settings.from_env({}).relationship_kinds
    assert sum(is_synced_kind(customer, default) for customer in customers) == 30
    wider = Settings.from_env({"PARTNER_CENTER_RELATIONSHIP_KINDS": "Reseller,Microsoft-Support"}).relationship_kinds
    assert wider == frozenset({"reseller", "microsoft_support"})
    assert sum(is_synced_kind(c, wider) for c in customers) == 30 + sum(
        c.relationship_kind == "microsoft_support" for c in customers)


def test_the_reseller_customers_of_a_mixed_estate_are_those_of_a_plain_one(trust_simulator):
    sim = trust_simulator
    plain = sim.add_partner(tenant_id="5b2a1c9e-1f00-4c3e-9d55-0c6d6a3e2f11", customers=20, seed=5)
    mixed = sim.add_partner(tenant_id="5b2a1c9e-1f00-4c3e-9d55-0c6d6a3e2f12", customers=20, seed=5,
                            other_relationships=6)
    assert len(sim.customers(mixed.tenant_id)) == 26
    resellers = [c for c in sim.customers(mixed.tenant_id) if c["relationshipToPartner"] == "reseller"]
    assert len(resellers) == 20 and len(sim.customers(plain.tenant_id)) == 20


def test_a_customer_whose_relationship_changes_is_read_with_its_new_kind(trust_simulator):
    sim = trust_simulator
    tenant = sim.customers()[3]["id"]
    sim.set_relationship_kind(tenant, "advisor")
    customer = next(c for c in _client(sim).iter_customers() if c.tenant_id == tenant)
    assert customer.relationship_kind == "advisor" and not is_synced_kind(customer, frozenset({"reseller"}))


def test_a_missing_or_null_relationship_is_read_as_an_unnamed_kind_not_a_broken_item(trust_simulator):
    sim = trust_simulator
    items = [dict(item) for item in sim.customers()[:3]]
    items[0]["relationshipToPartner"] = None
    del items[1]["relationshipToPartner"]
    items[2]["relationshipToPartner"] = "MicrosoftSupport"
    sim.inject("list_customers", "body", body={"totalCount": 3, "items": items, "links": {}})
    page = next(_client(sim).iter_customer_pages())
    assert page.malformed == []
    assert [c.relationship_kind for c in page.customers] == ["", "", "microsoft_support"]
    assert not any(is_synced_kind(c, frozenset({"reseller"})) for c in page.customers)


@pytest.mark.parametrize("value", ["resseller", " , ", "none"])
def test_a_bad_relationship_kinds_setting_names_the_setting(value):
    from shared.settings import SettingsError

    with pytest.raises(SettingsError, match="PARTNER_CENTER_RELATIONSHIP_KINDS"):
        Settings.from_env({"PARTNER_CENTER_RELATIONSHIP_KINDS": value})


def test_a_bad_cloud_names_the_setting():
    from shared.settings import SettingsError

    with pytest.raises(SettingsError, match="PARTNER_CENTER_CLOUD"):
        Settings.from_env({"PARTNER_CENTER_CLOUD": "mooncake"})
    with pytest.raises(SettingsError, match="PARTNER_CENTER_API_URL"):
        Settings.from_env({"PARTNER_CENTER_API_URL": "partner.example"})


# --- 6. Indirect-reseller endpoints ------------------------------------------------------------


@pytest.fixture
def provider(trust_simulator):
    sim = trust_simulator
    partner = sim.add_partner(customers=20, resellers=5)
    return sim, partner, _user_client(sim, partner)[0]


def test_the_reseller_list_follows_next_links_and_keeps_only_active_relationships(provider):
    sim, partner, client = provider
    sim.set_relationship_page_size(2)
    sim.set_reseller_state(partner.reseller_ids[1], "Inactive", partner.tenant_id)
    sim.set_reseller_state(partner.reseller_ids[4], "Terminated", partner.tenant_id)
    try:
        assert list(client.iter_indirect_resellers()) == [partner.reseller_ids[i] for i in (0, 2, 3)]
        assert sim.counters()["partner_relationships"] >= 3
    finally:
        sim.set_relationship_page_size(None)


@pytest.mark.parametrize("answer", ["null", "empty", "collection"])
def test_a_customer_without_a_reseller_has_none_however_partner_center_says_so(provider, answer):
    sim, partner, client = provider
    direct = next(c.tenant_id for c in sim.account(partner.tenant_id).listed() if not c.indirect_reseller_id)
    sim.set_no_reseller_answer(answer)
    try:
        assert client.get_customer_indirect_reseller(direct) == ""
    finally:
        sim.set_no_reseller_answer("null")


def test_the_customers_reseller_is_found_among_its_partners_and_the_provider_is_not_taken_for_one(provider):
    sim, partner, client = provider
    customer = next(c for c in sim.account(partner.tenant_id).listed() if c.indirect_reseller_id)
    assert client.get_customer_indirect_reseller(customer.tenant_id) == customer.indirect_reseller_id
    sim.set_reseller_state(customer.indirect_reseller_id, "Inactive", partner.tenant_id)
    assert client.get_customer_indirect_reseller(customer.tenant_id) == ""


# --- 7. List anomalies ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["no_content", "null_items"])
def test_a_page_without_items_is_retried_and_then_never_taken_for_an_empty_page(trust_simulator, kind):
    sim = trust_simulator
    client = _client(sim)
    sim.inject("list_customers", kind)  # once: the retry gets the page
    assert len(list(client.iter_customers(page_size=5))) == len(sim.customers())

    pages = client.iter_customer_pages(page_size=5)
    first = next(pages)
    assert len(first.customers) == 5
    sim.inject("list_customers", kind, times=20)
    with pytest.raises(IncompleteListError) as caught:
        next(pages)
    assert "page 2" in str(caught.value)
    sim.clear_faults()


def test_a_walk_resumed_with_an_expired_continuation_token_gets_a_typed_error(trust_simulator):
    sim = trust_simulator
    client = _client(sim)
    first = next(client.iter_customer_pages(page_size=5))
    sim.expire_continuation_tokens()
    with pytest.raises(ContinuationExpiredError) as caught:
        next(client.iter_customer_pages(page_size=5, start=first.next_link))
    assert caught.value.status == 400 and "start the walk again" in str(caught.value)
    assert len(list(client.iter_customers(page_size=5))) == len(sim.customers())
