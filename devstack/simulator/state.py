"""The simulated Partner Center's state and its scenario controls.

`PartnerCenterState` holds every partner account, the token registry, traffic observations,
injected faults and service settings. Its public methods are the control surface that tests call
in Python and that `/_simulator/...` exposes over HTTP; all of them are thread-safe.
"""

from __future__ import annotations

import datetime
import threading
import uuid
from typing import Any, Mapping

from devstack.simulator.accounts import Partner, PartnerAccount, UnknownCustomer
from devstack.simulator.estate import EstateGenerator
from devstack.simulator.identity import TokenIssuer
from devstack.simulator.queries import ContinuationTokens
from devstack.simulator.resources import billing_profile_resource, customer_list_item
from devstack.simulator.traffic import Fault, FaultPlan, RequestBudget, TrafficLog
from devstack.simulator.webhooks import RESELLER_RELATIONSHIP_ACCEPTED, Delivery, SimulatedWebhooks

# The default partner's credentials are fixed so local settings can name them once and for all.
DEFAULT_PARTNER_TENANT_ID = "48685b73-3e28-41a8-91a8-f34f4d9c96a6"
DEFAULT_CLIENT_ID = "073f43c0-b67e-4dec-a529-d896d4a9b98a"
DEFAULT_CLIENT_SECRET = "simulator-secret-not-for-production"
DEFAULT_PARTNER_DOMAIN = "simulatorpartner.onmicrosoft.com"
NEXT_LINK_FORMS = ("v1", "bare")
CLOUDS = ("public", "china")
# What "get partners of a customer" answers for a customer without a reseller.
NO_RESELLER_ANSWERS = ("null", "empty", "collection")
# Derives further partners' fixed ids, so a scenario script gets the same ids on every run.
_PARTNER_NAMESPACE = uuid.UUID("49ccbd4e-682f-4a17-a1d7-61b23ebc6ba9")


class UnknownPartner(LookupError):
    """No partner tenant with that id exists in the simulator."""


class PartnerCenterState:
    """Partner accounts and everything the simulated service remembers about traffic."""

    def __init__(
        self,
        customers: int = 25,
        seed: int = 1,
        latency: float = 0.0,
        requests_per_minute: int | None = None,
        next_link_form: str = "v1",
        token_lifetime: int = 3600,
        other_relationships: int = 0,
        cloud: str = "public",
    ) -> None:
        self.lock = threading.RLock()
        self.tokens = TokenIssuer(token_lifetime)
        self.traffic = TrafficLog()
        self.faults = FaultPlan()
        self.continuation = ContinuationTokens()
        self.webhooks = SimulatedWebhooks()
        self.latency = 0.0
        self.next_link_form = "v1"
        self.cloud = "public"
        self.no_reseller_answer = "null"
        self.relationship_page_size: int | None = None
        self.set_cloud(cloud)
        self.set_latency(latency)
        self.set_next_link_form(next_link_form)
        self._seed = seed
        self._accounts: dict[str, PartnerAccount] = {}
        self._budgets: dict[str, RequestBudget] = {}
        self._default = self._create_account(
            Partner(DEFAULT_PARTNER_TENANT_ID, DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_PARTNER_DOMAIN),
            customers, seed, requests_per_minute, resellers=0, other_relationships=other_relationships,
        )

    # --- partners ------------------------------------------------------------------------------

    @property
    def partner_tenant_id(self) -> str:
        """The default partner tenant's id."""
        return self._default.partner.tenant_id

    @property
    def client_id(self) -> str:
        """The default partner's app (client) id."""
        return self._default.partner.client_id

    @property
    def client_secret(self) -> str:
        """The default partner's app secret."""
        return self._default.partner.client_secret

    def add_partner(
        self,
        tenant_id: str | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        customers: int = 0,
        seed: int | None = None,
        requests_per_minute: int | None = None,
        resellers: int = 0,
        other_relationships: int = 0,
    ) -> Partner:
        """Another partner tenant with its own estate, credentials and limit.

        With `resellers` > 0 the partner is an indirect provider: it gets that many indirect
        resellers and most of its customers are attributed to one of them. `other_relationships`
        customers with other relationship kinds (advisor, microsoft_support, ...) are spread
        through its list in addition to the `customers` reseller ones.
        """
        with self.lock:
            ordinal = len(self._accounts)
            tenant_id = _guid(tenant_id or str(uuid.uuid5(_PARTNER_NAMESPACE, f"{ordinal}/tenant")))
            client_id = _guid(client_id or str(uuid.uuid5(_PARTNER_NAMESPACE, f"{ordinal}/client")))
            if tenant_id in self._accounts:
                raise ValueError(f"partner tenant {tenant_id} already exists")
            if any(account.partner.client_id == client_id for account in self._accounts.values()):
                raise ValueError(f"client id {client_id} is already registered")
            partner = Partner(
                tenant_id=tenant_id,
                client_id=client_id,
                client_secret=client_secret or f"simulator-secret-{ordinal}",
                domain=f"simulatorpartner{ordinal}.onmicrosoft.com",
            )
            account = self._create_account(
                partner, customers, self._seed if seed is None else seed, requests_per_minute, resellers,
                other_relationships,
            )
            return account.partner

    def partners(self) -> list[Partner]:
        """Every partner tenant, the default one first."""
        with self.lock:
            return [account.partner for account in self._accounts.values()]

    def account(self, partner_tenant_id: str | None) -> PartnerAccount:
        """The account of a partner tenant (None: the default partner)."""
        if partner_tenant_id is None:
            return self._default
        account = self._accounts.get(partner_tenant_id.lower())
        if account is None:
            raise UnknownPartner(f"no partner tenant {partner_tenant_id}")
        return account

    def find_account(self, partner_tenant_id: str) -> PartnerAccount | None:
        """The account of a partner tenant, or None when there is no such partner."""
        return self._accounts.get(partner_tenant_id.lower())

    def account_for_client(self, client_id: str) -> PartnerAccount | None:
        """The account whose app has this client id."""
        with self.lock:
            return next((a for a in self._accounts.values() if a.partner.client_id == client_id.lower()), None)

    def customer_elsewhere(self, tenant_id: str) -> bool:
        """True when some partner has (or had) this customer: a stranger gets 403, not 404."""
        with self.lock:
            return any(
                account.customer(tenant_id) is not None or account.relationship_ended(tenant_id)
                for account in self._accounts.values()
            )

    def budget(self, partner_tenant_id: str) -> RequestBudget:
        """The partner's request budget (sliding window)."""
        return self._budgets[partner_tenant_id]

    # --- scenarios -----------------------------------------------------------------------------

    def accept_relationship(
        self,
        *,
        tenant_id: str | None = None,
        company_name: str | None = None,
        domain: str | None = None,
        billing_profile: Mapping[str, Any] | None = None,
        partner_tenant_id: str | None = None,
        indirect_reseller_id: str | None = None,
        position: int | None = None,
        before: str | None = None,
    ) -> str:
        """A customer accepts the partner's reseller relationship; returns its tenant id.

        It appears at the end of the customer list, or at list position `position` (0 = first),
        or just before the customer `before`: a walk already past that point does not see it.
        The activity log gets `add_customer`. Data not given is generated.
        """
        with self.lock:
            customer = self.account(partner_tenant_id).accept_relationship(
                _now(),
                position=position,
                before=_guid(before) if before else None,
                tenant_id=_guid(tenant_id) if tenant_id else None,
                company_name=company_name,
                domain=domain,
                billing_profile=billing_profile,
                indirect_reseller_id=_guid(indirect_reseller_id) if indirect_reseller_id else None,
            )
            partner = self.account(partner_tenant_id).partner.tenant_id
        self.webhooks.relationship_accepted(partner, customer.tenant_id, indirect=bool(customer.indirect_reseller_id))
        return customer.tenant_id

    def update_billing_profile(
        self, tenant_id: str, changes: Mapping[str, Any], partner_tenant_id: str | None = None
    ) -> None:
        """Change the customer's billing profile: top-level keys and a nested `defaultAddress` dict
        are merged; a None value removes the field. Bumps the etag; logs
        `update_customer_billing_profile`."""
        with self.lock:
            self.account(partner_tenant_id).update_billing_profile(_guid(tenant_id), changes, _now())

    def rename_customer(self, tenant_id: str, company_name: str, partner_tenant_id: str | None = None) -> None:
        """Change the customer's company name; logs `update_customer_partner_contract_company_name`."""
        with self.lock:
            self.account(partner_tenant_id).rename(_guid(tenant_id), company_name, _now())

    def remove_relationship(self, tenant_id: str, partner_tenant_id: str | None = None) -> None:
        """End the relationship: the customer leaves the list, its calls answer 403 (code 20002),
        and the log gets `remove_partner_customer_relationship`."""
        with self.lock:
            self.account(partner_tenant_id).remove_relationship(_guid(tenant_id), _now())

    def restore_relationship(
        self, tenant_id: str, *, position: int | None = None, before: str | None = None,
        partner_tenant_id: str | None = None,
    ) -> None:
        """A removed customer accepts a reseller relationship again: listed again (in its old
        place unless `position`/`before` say otherwise), its calls answer again, the activity log
        gets `add_customer` and a registered webhook gets the acceptance event."""
        with self.lock:
            account = self.account(partner_tenant_id)
            customer = account.restore_relationship(
                _guid(tenant_id), _now(), position=position, before=_guid(before) if before else None
            )
            partner = account.partner.tenant_id
        self.webhooks.relationship_accepted(partner, customer.tenant_id, indirect=bool(customer.indirect_reseller_id))

    def set_relationship_kind(self, tenant_id: str, kind: str, partner_tenant_id: str | None = None) -> None:
        """The customer's `relationshipToPartner` becomes `kind` (e.g. reseller to advisor, or a
        value no document names); it stays listed."""
        if not isinstance(kind, str) or not kind:
            raise ValueError("a relationship kind is a non-empty string")
        with self.lock:
            self.account(partner_tenant_id).set_relationship_kind(_guid(tenant_id), kind)

    def set_reseller_state(self, reseller_id: str, state: str, partner_tenant_id: str | None = None) -> None:
        """An indirect reseller's relationship state ("Active", "Inactive", "Terminated")."""
        with self.lock:
            self.account(partner_tenant_id).set_reseller_state(_guid(reseller_id), state)

    def issue_tokens_without_mfa(self, enabled: bool = True, partner_tenant_id: str | None = None) -> None:
        """From now on the partner's app+user tokens lack MFA (its admin signed in without it):
        Partner Center answers them 401 with code 900421. Tokens issued earlier keep theirs."""
        with self.lock:
            self.account(partner_tenant_id).tokens_without_mfa = bool(enabled)

    def set_cloud(self, cloud: str) -> None:
        """"public" or "china": which token audience the API accepts (the other cloud's is a 401)."""
        if cloud not in CLOUDS:
            raise ValueError(f"cloud must be one of {CLOUDS}, not {cloud!r}")
        self.cloud = cloud

    def set_no_reseller_answer(self, form: str) -> None:
        """What "get partners of a customer" answers when the customer has no reseller: `null`,
        an empty body, or an empty collection."""
        if form not in NO_RESELLER_ANSWERS:
            raise ValueError(f"the answer must be one of {NO_RESELLER_ANSWERS}, not {form!r}")
        self.no_reseller_answer = form

    def set_relationship_page_size(self, size: int | None) -> None:
        """Page `/v1/relationships` with `links.next` every `size` resellers (None: one page)."""
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError("the relationship page size must be at least 1, or None")
        self.relationship_page_size = size

    def expire_continuation_tokens(self) -> None:
        """Every continuation token issued so far is refused from now on: a walk resumed with one
        gets 400 and has to start again from the first page."""
        self.continuation.rotate()

    def customers(self, partner_tenant_id: str | None = None) -> list[dict[str, Any]]:
        """The current customer list items, as `GET /v1/customers` serves them."""
        with self.lock:
            listed = list(self.account(partner_tenant_id).listed())
        return [customer_list_item(customer) for customer in listed]

    def billing_profile(self, tenant_id: str, partner_tenant_id: str | None = None) -> dict[str, Any]:
        """The customer's billing profile as served."""
        with self.lock:
            customer = self.account(partner_tenant_id).customer(_guid(tenant_id))
        if customer is None:
            raise UnknownCustomer(f"no current customer {tenant_id}")
        return billing_profile_resource(customer)

    # --- webhooks ---------------------------------------------------------------------------------

    def register_webhook(self, url: str, events: list[str] | tuple[str, ...] | None = None, *,
                         ms_signature_header: bool = False, partner_tenant_id: str | None = None) -> dict[str, Any]:
        """Create or replace the partner's webhook registration (as `POST`/`PUT /webhooks/v1/registration`).

        `events` defaults to the two relationship events and `test-created`.
        """
        partner = self.account(partner_tenant_id).partner.tenant_id
        body = {
            "WebhookUrl": url,
            "WebhookEvents": list(events or (RESELLER_RELATIONSHIP_ACCEPTED,
                                             "indirect-reseller-relationship-accepted-by-customer", "test-created")),
            "SignatureTokenToMsSignatureHeader": ms_signature_header,
        }
        return self.webhooks.register(partner, body, update=self.webhooks.is_registered(partner))

    def send_webhook_event(self, variant: str = "signed", *, tenant_id: str | None = None,
                           event_name: str = RESELLER_RELATIONSHIP_ACCEPTED, url: str | None = None,
                           partner_tenant_id: str | None = None, changed_at: str | None = None) -> Delivery:
        """POST one event to the registered URL (or `url`) now, once; see `SimulatedWebhooks.send_event`
        for the variants (forged, tampered, wrong-algorithm, malformed, ...)."""
        partner = self.account(partner_tenant_id).partner.tenant_id
        return self.webhooks.send_event(partner, variant, tenant_id=tenant_id, event_name=event_name, url=url,
                                        changed_at=changed_at)

    def replay_webhook_event(self, partner_tenant_id: str | None = None) -> Delivery:
        """Send the partner's last event again, byte for byte (a duplicate delivery)."""
        return self.webhooks.replay(self.account(partner_tenant_id).partner.tenant_id)

    def webhook_deliveries(self) -> list[Delivery]:
        """Every webhook delivery attempt so far, oldest first."""
        return self.webhooks.deliveries()

    def wait_for_webhooks(self, timeout: float = 30.0) -> bool:
        """Wait until background deliveries and their retries are done; False on timeout."""
        return self.webhooks.wait(timeout)

    def set_webhook_delivery(self, attempts: int | None = None, backoff: float | None = None) -> None:
        """Delivery attempts per event (Partner Center makes 10) and the first retry's delay (doubling)."""
        self.webhooks.set_delivery(attempts, backoff)

    # --- observations --------------------------------------------------------------------------

    def counters(self) -> dict[str, int]:
        """Requests per endpoint, plus `throttled` (429s sent), `faults` (injected faults served)
        and `unauthorized` (401s for missing or invalid tokens)."""
        return self.traffic.counters()

    def reset_counters(self) -> None:
        """Zero the counters and clear the request log."""
        self.traffic.reset()

    def request_log(self) -> list[tuple[float, str | None, str, int]]:
        """API requests as (monotonic time, partner tenant id, endpoint, status)."""
        return self.traffic.requests()

    def request_ids(self) -> list[tuple[str, int, str, str]]:
        """(endpoint, status, MS-RequestId, MS-CorrelationId) of every API request, oldest first:
        shows which retries reused a request id."""
        return self.traffic.tracing()

    def peak_requests(self, window_seconds: float = 60.0, partner_tenant_id: str | None = None) -> int:
        """The most API requests admitted (not 429) in any sliding window: proves a budget held."""
        return self.traffic.peak(window_seconds, self.account(partner_tenant_id).partner.tenant_id)

    # --- faults and settings -------------------------------------------------------------------

    def inject(
        self,
        endpoint: str,
        kind: str,
        *,
        times: int = 1,
        status: int = 503,
        retry_after: float | None = None,
        body: Any = None,
        tenant_id: str | None = None,
        partner_tenant_id: str | None = None,
        retry_after_form: str = "seconds",
    ) -> None:
        """The next `times` requests to `endpoint` ("*" for any) get a fault, then service resumes.

        Kinds: "status" (an error status with the documented body; 429 gets the throttle shape
        and a Retry-After in `retry_after_form`: "seconds", "http-date" or "none"), "drop" (the
        connection closes mid-body), "malformed" (200 with a body that is not JSON), "body" (200
        with `body` as the JSON response), "no_content" (204, no body), "null_items" (the real
        page with `items: null`). `tenant_id` limits the fault to one customer's URLs;
        `partner_tenant_id` None means the default partner.
        """
        partner = self.account(partner_tenant_id).partner.tenant_id
        self.faults.add(Fault(
            endpoint=endpoint,
            kind=kind,
            remaining=times,
            status=status,
            retry_after=retry_after,
            body=body,
            tenant_id=_guid(tenant_id) if tenant_id else None,
            partner_tenant_id=partner,
            retry_after_form=retry_after_form,
        ))

    def clear_faults(self) -> None:
        """Forget every injected fault not yet served."""
        self.faults.clear()

    def expire_tokens(self) -> None:
        """Every access token issued so far is rejected from now on (401, code 800001)."""
        self.tokens.expire_access_tokens()

    def issue_refresh_token(self, partner_tenant_id: str | None = None) -> str:
        """A refresh token for the partner's app+user flow (as after the admin's one MFA sign-in)."""
        partner = self.account(partner_tenant_id).partner
        return self.tokens.issue_refresh_token(partner.tenant_id, partner.client_id)

    def set_latency(self, seconds: float) -> None:
        """Seconds of delay before every API response."""
        if seconds < 0:
            raise ValueError("latency cannot be negative")
        self.latency = float(seconds)

    def set_requests_per_minute(self, limit: int | None, partner_tenant_id: str | None = None) -> None:
        """The partner's API limit per sliding minute (None: unlimited)."""
        if limit is not None and limit < 1:
            raise ValueError("requests_per_minute must be at least 1, or None")
        with self.lock:
            self.account(partner_tenant_id).requests_per_minute = limit

    def set_next_link_form(self, form: str) -> None:
        """"v1": next links start with /v1; "bare": without it (the older responses' quirk)."""
        if form not in NEXT_LINK_FORMS:
            raise ValueError(f"next_link_form must be one of {NEXT_LINK_FORMS}, not {form!r}")
        self.next_link_form = form

    # --- internals -----------------------------------------------------------------------------

    def _create_account(
        self, partner: Partner, customers: int, seed: int, requests_per_minute: int | None, resellers: int,
        other_relationships: int = 0,
    ) -> PartnerAccount:
        if customers < 0 or resellers < 0 or other_relationships < 0:
            raise ValueError("customers, resellers and other_relationships cannot be negative")
        if requests_per_minute is not None and requests_per_minute < 1:
            raise ValueError("requests_per_minute must be at least 1, or None")
        generator = EstateGenerator(seed, partner.tenant_id)
        reseller_list = generator.resellers(resellers)
        partner = Partner(
            partner.tenant_id, partner.client_id, partner.client_secret, partner.domain,
            tuple(reseller.tenant_id for reseller in reseller_list),
        )
        others = EstateGenerator(seed, f"{partner.tenant_id}/other").other_relationships(other_relationships)
        account = PartnerAccount(partner, generator, reseller_list, customers, requests_per_minute, _now(), others)
        self._accounts[partner.tenant_id] = account
        self._budgets[partner.tenant_id] = RequestBudget()
        return account


def _guid(value: str) -> str:
    """The lowercase form of a GUID; ValueError for anything else."""
    try:
        return str(uuid.UUID(value))
    except (ValueError, AttributeError, TypeError):
        raise ValueError(f"{value!r} is not a GUID") from None


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)
