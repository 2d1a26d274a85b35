"""Work on one account meeting at once: timers, manual runs, and validation during a sync."""

from __future__ import annotations

import threading

import pytest

from shared import app
from shared.sync.engine import FULL, INCREMENTAL
from tests.functions.conftest import answer, validate


@pytest.mark.slow
def test_validation_during_a_sync_always_reads_a_consistent_organization(with_partner_center, configured):
    sim = with_partner_center
    app.current().run_accounts(FULL)
    tenants = [c["id"] for c in sim.customers()]
    for index, tenant in enumerate(tenants):
        sim.update_billing_profile(tenant, {"email": f"changed{index}@example.com"})
    stop = threading.Event()
    answers = []

    def platform_edits() -> None:
        while not stop.is_set():
            for tenant in tenants[:5]:
                response = validate({"accountId": configured, "customerTenantId": tenant,
                                     "billingContact": {"email": "someone.else@example.com"}})
                answers.append((response.status_code, answer(response)))

    editor = threading.Thread(target=platform_edits)
    editor.start()
    try:
        [result] = app.current().run_accounts(FULL)
    finally:
        stop.set()
        editor.join()
    assert result.outcome == "succeeded" and result.counts.updated == len(tenants)
    assert answers and all(status == 200 for status, _ in answers)
    # Whatever moment it read, each answer saw one whole organization: always a Microsoft customer
    # whose billing contact may not be edited away from Partner Center's.
    for _, body in answers:
        assert body["microsoftCustomer"] is True and body["allowed"] is False
        codes = {v["code"] for v in body["violations"]}
        assert codes == {"CONTACT_MANAGED_IN_PARTNER_CENTER", "BILLING_MUST_MATCH_PRIMARY"}
    organization = app.current().stores.organizations.get(configured, tenants[0])
    assert organization["PrimaryEmail"] == organization["BillingEmail"] == "changed0@example.com"


@pytest.mark.slow
def test_overlapping_timer_and_manual_runs_leave_one_consistent_state(with_partner_center, configured):
    sim = with_partner_center
    sim.set_latency(0.02)
    results = []
    runs = [threading.Thread(target=lambda mode=mode: results.extend(app.current().run_accounts(mode)))
            for mode in (FULL, FULL, INCREMENTAL)]
    for run in runs:
        run.start()
    for run in runs:
        run.join()
    outcomes = sorted(r.outcome for r in results)
    assert outcomes.count("succeeded") >= 1 and set(outcomes) <= {"succeeded", "skipped"}
    stores = app.current().stores
    rows = list(stores.organizations.list(configured))
    assert sorted(r["RowKey"] for r in rows) == sorted(c["id"] for c in sim.customers())
    assert app.current().run_accounts(FULL)[0].counts.unchanged == len(rows)
