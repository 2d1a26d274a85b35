"""`python -m devstack demo`: the main job, end to end, on Azurite and the Partner Center simulator.

Everything runs on this machine: Azurite in memory, the simulator over HTTPS on loopback, and
the very timer functions that `function_app.py` registers.
"""

from __future__ import annotations

import json
import os
import tempfile
import time

import azure.functions as func

from devstack.local.azurite import Azurite
from devstack.local.host import call_http, fire_timer
from shared.settings import get_settings, reset_settings


def run_demo(customers: int = 40, seed: int = 42) -> int:
    from devstack.simulator import PartnerCenterSimulator
    from shared.sync.stores import SyncStores

    with tempfile.TemporaryDirectory(prefix="pc-sync-demo-") as state_dir, Azurite() as azurite, \
            PartnerCenterSimulator(customers=customers, seed=seed, state_dir=state_dir) as sim:
        os.environ.update({
            "SYNC_STORAGE_CONNECTION": azurite.connection_string,
            "PARTNER_CENTER_API_URL": sim.url,
            "PARTNER_CENTER_AUTHORITY_URL": sim.url,
            "PARTNER_CENTER_TENANT_ID": sim.partner_tenant_id,
            "PARTNER_CENTER_CLIENT_ID": sim.client_id,
            "PARTNER_CENTER_CLIENT_SECRET": sim.client_secret,
            "PARTNER_CENTER_ACCOUNT_ID": "demo",
            "REQUESTS_CA_BUNDLE": sim.ca_path,
        })
        reset_settings()
        stores = SyncStores.open(get_settings().require_storage())
        story = _Story(stores, sim)
        print(f"Azurite (in memory) on 127.0.0.1:{azurite.table_port}; Partner Center simulator at {sim.url} "
              f"with {customers} customers\n")

        story.step("1. Nightly full reconciliation brings the whole estate in", "full_reconciliation")
        story.show_organization(sim.customers()[0]["id"])

        tenant = sim.accept_relationship(
            company_name="Fabrikam Ltd", domain="fabrikamltd.onmicrosoft.com",
            billing_profile={"firstName": "Siân", "lastName": "Pritchard", "email": "sian.pritchard@fabrikam.example",
                             "culture": "en-GB", "language": "en",
                             "defaultAddress": {"country": "GB", "city": "Cardiff", "postalCode": "CF10 1EP",
                                                "addressLine1": "1 Bute Street", "phoneNumber": "+44 29 2000 0000"}},
        )
        story.step("2. Fabrikam accepts the reseller relationship; the next incremental run picks it up",
                   "incremental_sync")
        story.show_organization(tenant)

        sim.update_billing_profile(tenant, {"email": "accounts@fabrikam.example",
                                            "defaultAddress": {"city": "Leeds", "postalCode": "LS1 4AP"}})
        story.step("3. Fabrikam's billing contact changes in Partner Center", "incremental_sync")
        story.show_organization(tenant)
        story.show_changes(tenant)

        leaving = sim.customers()[1]["id"]
        sim.remove_relationship(leaving)
        story.step("4. A partner removes a reseller relationship", "incremental_sync")
        story.show_organization(leaving)

        story.step("5. Nothing changed in Partner Center: the next run writes nothing", "incremental_sync")
        story.ask_before_edit("6. A partner tries to change Fabrikam's billing contact on the Platform", tenant,
                              {"billingContact": {"email": "someone.else@fabrikam.example"}})
        story.summary()
    return 0 if story.ok else 1


class _Story:
    def __init__(self, stores, sim) -> None:
        self.stores = stores
        self.sim = sim
        self.account = get_settings().accounts[0].id
        self.ok = True

    def step(self, title: str, timer: str) -> None:
        print(title)
        calls_before = self.sim.counters()
        started = time.monotonic()
        fire_timer(timer)
        elapsed = time.monotonic() - started
        run = self.stores.runs.latest(self.account, limit=1)[0]
        counts = ", ".join(f"{k} {v}" for k, v in run.counts.items() if v)
        calls = {k: v - calls_before.get(k, 0) for k, v in self.sim.counters().items() if v - calls_before.get(k, 0)}
        print(f"   {run.mode} run {run.outcome} in {elapsed:.1f}s: {counts or 'no changes'}")
        print(f"   Partner Center calls: {', '.join(f'{k} {v}' for k, v in sorted(calls.items())) or 'none'}")
        if not run.outcome.startswith("succeeded"):
            self.ok = False
            print(f"   error: {run.error}")
        print()

    def show_organization(self, tenant_id: str) -> None:
        org = self.stores.organizations.get(self.account, tenant_id)
        if org is None:
            print(f"   organization {tenant_id}: not on the Platform\n")
            self.ok = False
            return
        print(f"   {org['CompanyName']} ({tenant_id}) status={org['Status']}")
        print(f"     Primary: {org['PrimaryFirstName']} {org['PrimaryLastName']} <{org['PrimaryEmail']}> "
              f"{org['PrimaryPhone'] or '(no phone)'}, {org['PrimaryCity']} {org['PrimaryPostalCode']} {org['PrimaryCountry']}")
        same = all(org[f"Billing{k}"] == org[f"Primary{k}"] for k in ("FirstName", "LastName", "Email", "City"))
        print(f"     Billing contact equals Primary: {same}; missing in Partner Center: "
              f"{org['MissingContactFields'] or 'nothing'}\n")

    def ask_before_edit(self, title: str, tenant_id: str, edit: dict) -> None:
        """What the Platform's contact-edit webhook answers, through the registered HTTP function."""
        print(title)
        body = json.dumps({"accountId": self.account, "customerTenantId": tenant_id, **edit}).encode()
        request = func.HttpRequest("POST", "http://localhost/api/contacts/validate",
                                   headers={"Content-Type": "application/json"}, body=body)
        response = call_http("validate_contact_edit", request)
        answer = json.loads(response.get_body())
        print(f"   POST /api/contacts/validate {json.dumps(edit)} -> {response.status_code}: "
              f"allowed={answer.get('allowed')}")
        for violation in answer.get("violations", []):
            print(f"     {violation['code']} on {violation['field']}: {violation['message']}")
        print()

    def show_changes(self, tenant_id: str) -> None:
        for entry in self.stores.changes.for_organization(self.account, tenant_id, limit=1):
            print("   change log: " + "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in entry.changes.items()))
        print()

    def summary(self) -> None:
        from shared.cli import format_status
        from shared.sync.status import account_status

        active = sum(1 for _ in self.stores.organizations.list(self.account, status="active"))
        ended = sum(1 for _ in self.stores.organizations.list(self.account, status="relationship_ended"))
        print(f"Organizations table: {active} active, {ended} relationship_ended")
        print(format_status(account_status(self.stores, self.account)))
