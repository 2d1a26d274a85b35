"""The fault matrix: each fault ends the run in a recorded state, loses and doubles nothing,
and the next run converges to Partner Center's truth."""

from __future__ import annotations

import random

import pytest

from shared.store import EXCLUDE, OrganizationWrite, organization_state
from shared.keys import utc_now
from tests.sync.conftest import ACCOUNT


def assert_converged(stores, pc) -> None:
    """Every customer is an active organization with its current billing contact; no others are active."""
    orgs = {o["RowKey"]: o for o in stores.organizations.list(ACCOUNT)}
    current = {c["id"] for c in pc.customers()}
    active = {t for t, o in orgs.items() if o["Status"] == "active"}
    excluded = {t for t, o in orgs.items() if o["Status"] == "excluded"}
    assert active | (excluded & current) == current
    for tenant in active:
        profile = pc.billing_profile(tenant)
        expected = (profile.get("email") or "").strip() or (profile.get("defaultAddress", {}).get("emailAddress") or "").strip()
        assert orgs[tenant]["PrimaryEmail"] == orgs[tenant]["BillingEmail"] == expected


@pytest.mark.slow
def test_a_429_storm_with_long_retry_after_is_waited_out(make_sync, stores, pc):
    pc.inject("billing_profile", "status", status=429, retry_after=2, times=3)
    result = make_sync().full()
    assert result.outcome == "succeeded" and result.throttled_calls == 3
    assert stores.runs.latest(ACCOUNT, "full", limit=1)[0].throttled_calls == 3
    assert_converged(stores, pc)


def test_a_429_longer_than_the_time_budget_stops_the_run_cleanly(make_sync, stores, pc):
    pc.inject("list_customers", "status", status=429, retry_after=120, times=1)
    result = make_sync(time_budget_seconds=5).full()
    assert result.outcome == "failed" and "ThrottledError" in result.error
    assert make_sync().full().outcome == "succeeded"
    assert_converged(stores, pc)


def test_a_5xx_burst_is_retried_through(make_sync, stores, pc):
    pc.inject("billing_profile", "status", status=503, times=6)
    result = make_sync().full()
    assert result.outcome == "succeeded" and result.counts.failed == 0
    assert_converged(stores, pc)


def test_connections_dropped_mid_body_are_retried(make_sync, stores, pc):
    pc.inject("list_customers", "drop", times=1)
    pc.inject("billing_profile", "drop", times=3)
    assert make_sync().full().outcome == "succeeded"
    assert_converged(stores, pc)


def test_tokens_expiring_mid_run_are_refreshed(make_sync, stores, pc):
    def expire(page: int) -> None:
        if page == 1:
            pc.expire_tokens()

    result = make_sync(after_page=expire).full()
    assert result.outcome == "succeeded"
    assert pc.counters()["token"] == 2
    assert_converged(stores, pc)


@pytest.mark.parametrize("status", [403, 404])
def test_a_profile_that_fails_between_list_and_fetch_is_isolated(make_sync, stores, pc, status):
    tenant = pc.customers()[11]["id"]
    # The list page names the customer, then its profile fetch fails (403 is code 20002).
    pc.inject("billing_profile", "status", status=status, tenant_id=tenant, times=1)
    result = make_sync().full()
    assert result.outcome == "succeeded_with_failures" and result.counts.failed == 1
    assert stores.organizations.get(ACCOUNT, tenant) is None
    assert make_sync().full().counts.created == 1
    assert_converged(stores, pc)


@pytest.mark.parametrize("body", [
    {"totalCount": 1},
    {"totalCount": 1, "items": "not a list", "links": {}},
    {"totalCount": 1, "items": [], "links": {"next": {"method": "GET"}}},
    ["not", "an", "object"],
])
def test_a_malformed_page_fails_the_run_without_ending_anyone(make_sync, stores, pc, body):
    make_sync(page_size=500).full()
    pc.inject("list_customers", "body", body=body, times=1)
    result = make_sync(page_size=500).full()
    assert result.outcome == "failed" and "MalformedResponseError" in result.error
    assert result.counts.ended == 0
    assert_converged(stores, pc)


def test_malformed_records_on_a_page_are_failures_not_endings(make_sync, stores, pc):
    make_sync(page_size=500).full()
    items = pc.customers()
    broken = dict(items[0], companyProfile=None)
    pc.inject("list_customers", "body", body={"totalCount": len(items), "items": [broken, *items[1:]], "links": {}},
              times=1)
    result = make_sync(page_size=500).full()
    assert result.counts.failed == 1 and result.counts.ended == 0
    assert stores.organizations.get(ACCOUNT, items[0]["id"])["Status"] == "active"


def test_an_empty_list_served_once_is_held_by_the_deletion_guard(make_sync, stores, pc):
    make_sync(page_size=500).full()
    pc.inject("list_customers", "body", body={"totalCount": 0, "items": [], "links": {}}, times=1)
    result = make_sync(page_size=500, deletion_guard_minimum=3).full()
    assert result.counts.held == 25 and result.counts.ended == 0
    assert_converged(stores, pc)


def test_an_edit_racing_a_run_is_never_overwritten(make_sync, stores, pc):
    """Table Storage 412: an operator excludes an organization while a run is about to update it."""
    make_sync().full()
    victim = pc.customers()[15]["id"]  # on page 2 of 3
    pc.update_billing_profile(victim, {"email": "racing@example.com"})

    def exclude_meanwhile(page: int) -> None:
        if page == 1:
            stored = stores.organizations.get(ACCOUNT, victim)
            stores.organizations.apply(ACCOUNT, [OrganizationWrite(victim, EXCLUDE, utc_now(),
                                                                   previous=organization_state(stored))])

    # The snapshot said "active"; the exclusion changed the ETag, so the update is refused (412):
    # the run re-reads that organization, finds it excluded, and stores the rest of the page.
    raced = make_sync(after_page=exclude_meanwhile).full()
    assert raced.outcome == "succeeded", raced
    assert raced.counts.excluded_skipped == 1 and raced.counts.updated == 0
    assert stores.organizations.get(ACCOUNT, victim)["Status"] == "excluded"
    assert stores.organizations.get(ACCOUNT, victim)["PrimaryEmail"] != "racing@example.com"
    # No change-log entry exists for the change that was never stored.
    assert stores.changes.for_run(ACCOUNT, raced.run_id) == []


@pytest.mark.slow
def test_randomized_faults_and_crashes_always_converge(make_sync, stores, pc, soak_rounds):
    """Seeded and bounded: crash between pages and inject faults, then check convergence each time.

    `pytest tests/reliability --soak 200` runs a longer soak.
    """
    rng = random.Random(20261123)
    for round_number in range(soak_rounds):
        # Partner Center changes a little between rounds.
        for _ in range(rng.randint(0, 2)):
            pc.accept_relationship()
        tenants = [c["id"] for c in pc.customers()]
        if rng.random() < 0.5:
            pc.update_billing_profile(rng.choice(tenants), {"email": f"round{round_number}@example.com"})
        if rng.random() < 0.3:
            pc.remove_relationship(rng.choice(tenants))
        endpoint = rng.choice(["billing_profile", "list_customers"])
        kind = rng.choice(["status", "drop", "malformed"])
        pc.inject(endpoint, kind, status=rng.choice([500, 502, 503]), times=rng.randint(1, 3))
        crash_at = rng.choice([None, 1, 2])

        def crash(page: int, crash_at=crash_at) -> None:
            if page == crash_at:
                raise RuntimeError("killed between pages")

        make_sync(after_page=crash).full()
        pc.clear_faults()
        for _ in range(3):  # a resumed walk, then a fresh one if the resumed one started late
            result = make_sync().full()
            if result.outcome.startswith("succeeded") and not stores.failures.failing(ACCOUNT):
                break
        assert_converged(stores, pc)
