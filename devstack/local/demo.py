"""`python -m devstack demo`: the main job, end to end, on Azurite and the Partner Center simulator.

Everything runs on this machine: Azurite in memory, the simulator over HTTPS on loopback, and
the very functions that `function_app.py` registers: the timers fired as the host fires them, the
HTTP routes on a local socket, and the queue triggers listening on Azurite's queues, so a webhook
event and a "sync now" go through their queues as they do in the cloud.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import azure.functions as func
import requests

from shared import app
from devstack.eventgrid import StandInTopic
from devstack.local.azurite import Azurite
from devstack.local.easyauth import LocalOperator
from devstack.local.identity import IdentityEndpoint
from devstack.local.host import call_http, fire_timer
from devstack.local.queues import QueueListeners
from devstack.local.server import LocalServer
from shared.store.organizations import CREATE, END, UPDATE
from shared.sync.engine import CUSTOMER

# How long the demo waits for work handed to a queue trigger.
QUEUE_WAIT_SECONDS = 60
# How long a step waits for its events; the summary waits for any still missing as long as for a queue.
EVENT_WAIT_SECONDS = 1.0
# More runs than one step of the story starts (a drain runs one per pending webhook event).
_RUNS_PER_STEP = 100
# A change-log entry's kind, in the run counts' words.
_KIND_COUNTS = {CREATE: "created", UPDATE: "updated", END: "ended"}


def run_demo(customers: int = 40, seed: int = 42, operator: LocalOperator | None = None) -> int:
    from devstack.simulator import PartnerCenterSimulator

    operator = operator or LocalOperator()
    with tempfile.TemporaryDirectory(prefix="pc-sync-demo-") as state_dir, Azurite() as azurite, \
            PartnerCenterSimulator(customers=customers, seed=seed, state_dir=state_dir) as sim, \
            IdentityEndpoint() as identity, StandInTopic(Path(state_dir) / "topic") as topic:
        # Both local CAs: the simulator's and the stand-in topic's.
        bundle = Path(state_dir) / "ca-bundle.pem"
        bundle.write_text(Path(sim.ca_path).read_text() + Path(topic.ca_path).read_text())
        os.environ.update({
            **identity.environment,  # the app's managed identity, on loopback
            # Organization events to the stand-in Event Grid topic (docs/events.md).
            "PLATFORM_EVENTS__topicEndpointUri": topic.endpoint,
            "PLATFORM_EVENTS__credential": "managedidentity",
            "PLATFORM_EVENTS__clientId": "d3mo0000-0000-4000-8000-000000000001",
            "AzureWebJobsStorage": azurite.connection_string,  # where the queue triggers listen
            "SYNC_STORAGE_CONNECTION": azurite.connection_string,
            "PARTNER_CENTER_API_URL": sim.url,
            "PARTNER_CENTER_AUTHORITY_URL": sim.url,
            "PARTNER_CENTER_TENANT_ID": sim.partner_tenant_id,
            "PARTNER_CENTER_CLIENT_ID": sim.client_id,
            "PARTNER_CENTER_CLIENT_SECRET": sim.client_secret,
            "PARTNER_CENTER_ACCOUNT_ID": "demo",
            "REQUESTS_CA_BUNDLE": str(bundle),
            # The simulator signs its webhook events with a certificate from its own CA.
            "WEBHOOK_CERTIFICATE_HOSTS": f"127.0.0.1:{sim.port}",
            "WEBHOOK_TRUST_ANCHORS": sim.ca_path,
            "WEBHOOK_CERTIFICATE_ISSUER": "Partner Center Simulator",
            # The local server stands in for App Service Authentication, which announces itself so.
            "WEBSITE_AUTH_ENABLED": "True",
        })
        app.use(None)
        stores = app.current().stores
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no access log lines in the story
        with LocalServer(operator=operator) as server, QueueListeners():
            story = _Story(stores, sim, server.url, topic)
            print(f"Azurite (in memory) on 127.0.0.1:{azurite.table_port}; Partner Center simulator at {sim.url} "
                  f"with {customers} customers; the functions on {server.url}; the Platform's Event Grid topic "
                  f"(a stand-in) at {topic.endpoint}\n")
            _tell(story, sim)
            story.console(operator)
            if story.ok and sys.stdin.isatty():  # a person ran it: keep the console up to look around
                print("serving until Ctrl-C", flush=True)
                try:
                    while True:
                        time.sleep(3600)
                except KeyboardInterrupt:
                    pass
    return 0 if story.ok else 1


def _tell(story: "_Story", sim) -> None:
    story.step("1. Nightly full reconciliation brings the whole estate in", "full_reconciliation")
    story.show_organization(sim.customers()[0]["id"])

    sim.register_webhook(f"{story.functions_url}/api/partner-center/events/{story.account}")
    story.webhook("2. Fabrikam accepts the reseller relationship; Partner Center's webhook brings it in", dict(
        company_name="Fabrikam Ltd", domain="fabrikamltd.onmicrosoft.com",
        billing_profile={"firstName": "Siân", "lastName": "Pritchard", "email": "sian.pritchard@fabrikam.example",
                         "culture": "en-GB", "language": "en",
                         "defaultAddress": {"country": "GB", "city": "Cardiff", "postalCode": "CF10 1EP",
                                            "addressLine1": "1 Bute Street", "phoneNumber": "+44 29 2000 0000"}},
    ))
    tenant = story.last_tenant

    sim.update_billing_profile(tenant, {"email": "accounts@fabrikam.example",
                                        "defaultAddress": {"city": "Leeds", "postalCode": "LS1 4AP"}})
    story.step("3. Fabrikam's billing contact changes in Partner Center; the incremental timer picks it up",
               "incremental_sync")
    story.show_organization(tenant)
    story.show_changes(tenant)

    leaving = sim.customers()[1]["id"]
    sim.remove_relationship(leaving)
    # Timer runs are minutes apart. A walk never ends an organization written within a second
    # (instances' clock skew) of its start, and this story's runs follow each other in a blink.
    time.sleep(1.5)
    story.step("4. A partner removes a reseller relationship", "incremental_sync")
    story.show_organization(leaving)

    story.sync_now("5. An operator asks for a sync now; nothing changed in Partner Center, so it writes nothing")
    story.ask_before_edit("6. A partner tries to change Fabrikam's billing contact on the Platform", tenant,
                          {"billingContact": {"email": "someone.else@fabrikam.example"}})
    story.summary()


class _Story:
    def __init__(self, stores, sim, functions_url: str, topic: StandInTopic) -> None:
        self.stores = stores
        self.topic = topic
        self.events_shown = 0
        self.changes_stored = 0
        self.sim = sim
        self.functions_url = functions_url
        self.account = app.current().settings.accounts[0].id
        self.last_tenant = ""
        # The operator's browser: signed in once by the Easy Auth stand-in, the session cookie kept.
        self.session = requests.Session()
        self.session.get(f"{functions_url}/.auth/login/aad", timeout=30, allow_redirects=False)
        self.step_runs: list = []  # the runs the current step caused
        self.ok = True

    def step(self, title: str, timer: str) -> None:
        """Fire a timer as the host does; report every run that invocation started.

        An incremental invocation first drains the webhook events still pending (one customer
        run each) and then runs the incremental sync: the step reports them all.
        """
        print(title)
        known = self._run_ids()
        calls_before = self.sim.counters()
        fire_timer(timer)
        runs = self._runs_since(known)
        self._report_runs(runs, calls_before, causes={CUSTOMER: "a pending webhook event, drained before the run"})

    def webhook(self, title: str, customer: dict) -> None:
        """A customer accepts; the event goes receiver -> WebhookEvents -> webhook-events -> queue trigger."""
        print(title)
        known = self._run_ids()
        calls_before = self.sim.counters()
        started = time.monotonic()
        tenant = self.last_tenant = self.sim.accept_relationship(**customer)
        organization = self._wait(lambda: self.stores.organizations.get(self.account, tenant))
        elapsed = time.monotonic() - started
        deliveries = self.sim.webhook_deliveries()
        answered = deliveries[-1].status if deliveries else "no delivery"
        print(f"   webhook delivered (HTTP {answered}), stored, queued on webhook-events, and synced by the queue "
              f"trigger: an organization {elapsed:.1f}s after the acceptance")
        if organization is None:
            self._print_calls(calls_before)
            self.ok = False
            print("   error: the organization did not appear\n")
            return
        self._report_runs(self._finished_runs_since(known), calls_before)
        self.show_organization(tenant)

    def sync_now(self, title: str) -> None:
        """POST .../sync answers 202 at once; the sync-units queue trigger runs the sync."""
        print(title)
        known = self._run_ids()
        calls_before = self.sim.counters()
        started = time.monotonic()
        response = self.session.post(f"{self.functions_url}/api/ops/accounts/{self.account}/sync", timeout=30)
        answered = time.monotonic() - started
        if response.status_code == 403:  # started with --roles Sync.Reader: the refusal is the story
            print(f"   POST /api/ops/accounts/{self.account}/sync -> 403: {response.json().get('detail')}\n")
            return
        print(f"   POST /api/ops/accounts/{self.account}/sync -> {response.status_code} in {answered * 1000:.0f} ms "
              f"(queued on {response.json().get('queue')}, by {response.json().get('by')})")
        runs = self._finished_runs_since(known)
        if response.status_code != 202 or not runs:
            self.ok = False
            print("   error: the queued sync did not run\n")
            return
        self._report_runs(runs, calls_before)

    # -- which runs a step caused ----------------------------------------------------------------

    def _run_ids(self) -> set[str]:
        """The ids of the account's newest runs: every run a step finds beyond these, it caused."""
        return {r.run_id for r in self.stores.runs.latest(self.account, limit=_RUNS_PER_STEP)}

    def _runs_since(self, known: set[str]) -> list:
        """The runs started since ``known`` was taken, oldest first."""
        newest_first = self.stores.runs.latest(self.account, limit=_RUNS_PER_STEP)
        return [r for r in reversed(newest_first) if r.run_id not in known]

    def _finished_runs_since(self, known: set[str]) -> list:
        """The runs a queue trigger started since ``known`` was taken, once at least one exists
        and all have finished (``[]`` after the wait)."""
        def finished():
            runs = self._runs_since(known)
            return runs if runs and all(r.finished_at for r in runs) else None

        return self._wait(finished) or []

    def _report_runs(self, runs: list, calls_before: dict, causes: dict[str, str] | None = None) -> None:
        """One line per run with its counts, the Partner Center calls, and what the change log
        holds for these runs: the counts and the entries tell the same story."""
        self.step_runs = runs
        for run in runs:
            counts = ", ".join(f"{k} {v}" for k, v in run.counts.items() if v)
            seconds = (run.finished_at - run.started_at).total_seconds() if run.finished_at else 0.0
            cause = (causes or {}).get(run.mode)
            print(f"   {run.mode} run {run.run_id} {run.outcome} in {seconds:.1f}s: {counts or 'no changes'}"
                  + (f" ({cause})" if cause else ""))
            if not run.outcome.startswith("succeeded"):
                self.ok = False
                print(f"   error: {run.error}")
        if not runs:
            self.ok = False
            print("   error: no run was started")
        self._print_calls(calls_before)
        logged = Counter(_KIND_COUNTS.get(e.kind, e.kind) for run in runs
                         for e in self.stores.changes.for_run(self.account, run.run_id))
        print(f"   change log of {'this run' if len(runs) == 1 else 'these runs'}: "
              f"{', '.join(f'{k} {v}' for k, v in sorted(logged.items())) or 'no entries'}")
        self._print_events(sum(logged.values()))
        print()

    def _print_events(self, stored: int) -> None:
        """The events the Platform's topic received since the last step: one per stored change.
        One published after the step's bookkeeping (a queue trigger's) may come a moment later:
        it is shown with the next step, and the summary checks that none is missing."""
        self.changes_stored += stored
        events = self.topic.wait_for(self.changes_stored, timeout=EVENT_WAIT_SECONDS)[self.events_shown:]
        self.events_shown += len(events)
        if len(events) > 3:
            kinds = Counter(e["type"] for e in events)
            print("   events the Platform received: " + ", ".join(f"{t} x{n}" for t, n in sorted(kinds.items())))
        for event in events if len(events) <= 3 else []:
            fields = list(event["data"]["changes"])
            changed = ", ".join(fields) if len(fields) <= 8 else f"{len(fields)} fields"
            print(f"   event {event['type']} {event['subject']} version {event['data']['version']} "
                  f"(changed: {changed})")
        if self.events_shown < self.changes_stored:
            print(f"   ({self.changes_stored - self.events_shown} event(s) still on their way)")

    def _print_calls(self, calls_before: dict) -> None:
        calls = {k: v - calls_before.get(k, 0) for k, v in self.sim.counters().items() if v - calls_before.get(k, 0)}
        print(f"   Partner Center calls: {', '.join(f'{k} {v}' for k, v in sorted(calls.items())) or 'none'}")

    @staticmethod
    def _wait(check):
        deadline = time.monotonic() + QUEUE_WAIT_SECONDS
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.02)
        return None

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
        """The organization's change-log entries written by the current step's runs."""
        for run in self.step_runs:
            for entry in self.stores.changes.for_run(self.account, run.run_id):
                if entry.tenant_id == tenant_id:
                    print(f"   change log, {run.mode} run {run.run_id}: {_KIND_COUNTS.get(entry.kind, entry.kind)} "
                          + "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in entry.changes.items()))
        print()

    def console(self, operator: LocalOperator) -> None:
        """The last lines: where the console is, and who it signs in (checked to answer first)."""
        url = f"{self.functions_url}/api/console"
        answered = self.session.get(url, timeout=30).status_code
        if answered != 200:
            self.ok = False
            print(f"error: the console answered {answered}")
        print(f"\nOperators' console: {url}")
        print(f"Signed in locally as {operator.describe()}")

    def summary(self) -> None:
        from shared.cli import format_status
        active = sum(1 for _ in self.stores.organizations.list(self.account, status="active"))
        ended = sum(1 for _ in self.stores.organizations.list(self.account, status="relationship_ended"))
        print(f"Organizations table: {active} active, {ended} relationship_ended")
        received = len(self.topic.wait_for(self.changes_stored, timeout=QUEUE_WAIT_SECONDS))
        print(f"Events the Platform received: {received}, one per stored change ({self.changes_stored})")
        if received != self.changes_stored:
            self.ok = False
            print("   error: a stored change was not published")
        print(format_status(app.current().status.account(self.account)))
