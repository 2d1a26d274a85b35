"""The simulator's WSGI application: Entra ID, the Partner Center API, and the `/_simulator` controls.

An API request goes through the same gates as at Microsoft, in this order: bearer token (401),
the partner's request budget (429), then any injected fault, then the real handler; the
configured latency is added before the answer leaves. Control routes skip all of that.
"""

from __future__ import annotations

import datetime
import json
import math
import re
import secrets
import time
import uuid
from fractions import Fraction
from typing import Any, Callable, Iterator

from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.http import http_date
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from devstack.simulator import resources
from devstack.simulator.accounts import PartnerAccount
from devstack.simulator.control import serve_control
from devstack.simulator.estate import Customer
from devstack.simulator.identity import (
    RESOURCES,
    RETIRED_RESOURCE,
    EntraError,
    Grant,
    check_scope,
    client_info,
    granted_scope,
    id_token,
    openid_configuration,
)
from devstack.simulator.queries import (
    AuditFilter,
    BadQuery,
    CustomerFilter,
    audit_filter,
    audit_window,
    customer_filter,
    page_size,
)
from devstack.simulator.state import PartnerCenterState
from devstack.simulator.traffic import API_ENDPOINTS, ENTRA_ENDPOINTS, Fault
from devstack.simulator.webhooks import EVENT_NAMES as WEBHOOK_EVENT_NAMES
from devstack.simulator.webhooks import RegistrationError

CONTROL_PREFIX = "/_simulator"
# Partner Center accepts only the canonical GUID form in customer URLs.
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_JSON = "application/json; charset=utf-8"
_MAX_BODY = 1024 * 1024

# Error codes seen in Partner Center's answers.
TOKEN_INVALID = 800001
MFA_REQUIRED = 900421  # app+user token without MFA (enforced from 2026-04-01)
RETIRED_AUDIENCE = 900420  # a token for https://graph.windows.net
NO_RELATIONSHIP = 20002
TENANT_NOT_FOUND = 60003
INVALID_CUSTOMER_ID = 900118
AUTHORIZATION_FAILED = 1002
NOT_FOUND = 1000
BAD_REQUEST = 400  # no published code for malformed list queries; the status number stands in
_STATUS_CODES = {401: TOKEN_INVALID, 403: AUTHORIZATION_FAILED, 404: NOT_FOUND}


class ApiError(Exception):
    """An error answer in Partner Center's shape."""

    def __init__(self, status: int, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.code = code
        self.description = description


class PartnerCenterApp:
    """The WSGI callable serving one `PartnerCenterState`."""

    def __init__(self, state: PartnerCenterState) -> None:
        self.state = state
        self.routes = Map(
            [
                # Entra ID
                Rule("/<tenant>/v2.0/.well-known/openid-configuration", endpoint="openid_configuration"),
                Rule("/<tenant>/discovery/v2.0/keys", endpoint="jwks"),
                Rule("/<tenant>/oauth2/v2.0/token", endpoint="token", methods=["POST"]),
                # Partner Center: next links come with or without /v1 (an observed quirk), so both answer.
                Rule("/v1/customers", endpoint="list_customers", methods=["GET"]),
                Rule("/customers", endpoint="list_customers", methods=["GET"]),
                Rule("/v1/customers/<customer_id>", endpoint="get_customer", methods=["GET"]),
                Rule("/v1/customers/<customer_id>/profiles/billing", endpoint="billing_profile", methods=["GET"]),
                Rule("/v1/customers/<customer_id>/relationships", endpoint="customer_relationships", methods=["GET"]),
                Rule("/v1/relationships", endpoint="partner_relationships", methods=["GET"]),
                Rule("/relationships", endpoint="partner_relationships", methods=["GET"]),
                Rule("/v1/auditrecords", endpoint="audit_records", methods=["GET"]),
                Rule("/auditrecords", endpoint="audit_records", methods=["GET"]),
                # Webhooks: registration API, and the signing certificate events point at
                Rule("/webhooks/v1/registration", endpoint="webhook_registration",
                     methods=["GET", "POST", "PUT", "DELETE"]),
                Rule("/webhooks/v1/registration/events", endpoint="webhook_events", methods=["GET"]),
                Rule("/webhooks/v1/registration/validationEvents", endpoint="webhook_validation_events",
                     methods=["POST"]),
                Rule("/webhooks/v1/registration/validationEvents/<correlation_id>",
                     endpoint="webhook_validation_events", methods=["GET"]),
                Rule("/cert/<name>", endpoint="signing_certificate", methods=["GET"]),
                # Scenario controls
                Rule(f"{CONTROL_PREFIX}", endpoint="control_summary", methods=["GET"]),
                Rule(f"{CONTROL_PREFIX}/partners", endpoint="control_partners", methods=["GET", "POST"]),
                Rule(f"{CONTROL_PREFIX}/customers", endpoint="control_customers", methods=["GET", "POST"]),
                Rule(
                    f"{CONTROL_PREFIX}/customers/<tenant_id>", endpoint="control_customer", methods=["PATCH", "DELETE"]
                ),
                Rule(
                    f"{CONTROL_PREFIX}/customers/<tenant_id>/billing-profile",
                    endpoint="control_billing_profile", methods=["GET", "PATCH"],
                ),
                Rule(f"{CONTROL_PREFIX}/counters", endpoint="control_counters", methods=["GET", "DELETE"]),
                Rule(f"{CONTROL_PREFIX}/request-log", endpoint="control_request_log", methods=["GET"]),
                Rule(f"{CONTROL_PREFIX}/peak-requests", endpoint="control_peak_requests", methods=["GET"]),
                Rule(f"{CONTROL_PREFIX}/faults", endpoint="control_faults", methods=["POST", "DELETE"]),
                Rule(f"{CONTROL_PREFIX}/expire-tokens", endpoint="control_expire_tokens", methods=["POST"]),
                Rule(f"{CONTROL_PREFIX}/customers/<tenant_id>/restore", endpoint="control_restore_customer",
                     methods=["POST"]),
                Rule(f"{CONTROL_PREFIX}/resellers/<reseller_id>", endpoint="control_reseller", methods=["PATCH"]),
                Rule(f"{CONTROL_PREFIX}/expire-continuation-tokens", endpoint="control_expire_continuation_tokens",
                     methods=["POST"]),
                Rule(f"{CONTROL_PREFIX}/refresh-tokens", endpoint="control_refresh_tokens", methods=["POST"]),
                Rule(f"{CONTROL_PREFIX}/settings", endpoint="control_settings", methods=["GET", "PATCH"]),
                Rule(f"{CONTROL_PREFIX}/webhooks/events", endpoint="control_webhook_events", methods=["POST"]),
                Rule(f"{CONTROL_PREFIX}/webhooks/replay", endpoint="control_webhook_replay", methods=["POST"]),
                Rule(f"{CONTROL_PREFIX}/webhooks/deliveries", endpoint="control_webhook_deliveries",
                     methods=["GET"]),
            ],
            strict_slashes=False,
            # A client that prepends /v1 to a /v1 next link asks for /v1//v1/customers: that must fail.
            merge_slashes=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterator[bytes]:
        request = Request(environ)
        request.max_content_length = _MAX_BODY
        try:
            endpoint, args = self.routes.bind_to_environ(environ).match()
        except MethodNotAllowed as error:
            response = _json(405, resources.error_body(NOT_FOUND, "The method is not allowed for this resource."))
            response.headers["Allow"] = ", ".join(error.valid_methods or [])
        except HTTPException:
            response = _json(404, resources.error_body(NOT_FOUND, "The requested resource was not found."))
        else:
            if endpoint in API_ENDPOINTS:
                response = self._serve_api(request, endpoint, args)
            elif endpoint in ENTRA_ENDPOINTS:
                response = self._serve_entra(request, endpoint, args["tenant"])
            elif endpoint == "signing_certificate":
                response = self._signing_certificate(args["name"])
            else:
                response = self._serve_control(request, endpoint, args)
        return response(environ, start_response)

    # --- Partner Center API --------------------------------------------------------------------

    def _serve_api(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        state = self.state
        arrived = time.monotonic()
        state.traffic.count(endpoint)
        grant = self._grant(request)
        partner_tenant_id = grant.partner_tenant_id if grant else None
        refusal = self._refusal(grant)
        if refusal is not None:
            state.traffic.count("unauthorized")
            response = _json(401, resources.error_body(*refusal))
            response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        else:
            account = state.account(partner_tenant_id)
            wait = state.budget(partner_tenant_id).admit(arrived, account.requests_per_minute)
            fault = None
            if not wait:
                tenant_id = args.get("customer_id", "").lower() or None
                fault = state.faults.take(endpoint, partner_tenant_id, tenant_id)
            if wait:
                state.traffic.count("throttled")
                response = _throttled(math.ceil(wait))
            elif fault is not None and fault.kind == "null_items":
                # The real page with `items: null`: links and all, as observed mid-walk.
                state.traffic.count("faults")
                response = self._answer(endpoint, request, account, grant, args)
                if response.status_code == 200:
                    body = json.loads(response.get_data())
                    if isinstance(body, dict):
                        body["items"] = None
                        response = _json(200, body)
            elif fault is not None:
                state.traffic.count("faults")
                response = _fault_response(fault, entra=False)
            else:
                response = self._answer(endpoint, request, account, grant, args)
        state.traffic.record(arrived, partner_tenant_id, endpoint, response.status_code,
                             request.headers.get("MS-RequestId", ""), request.headers.get("MS-CorrelationId", ""))
        _stamp_partner_center_headers(request, response)
        if state.latency:
            time.sleep(state.latency)
        return response

    def _answer(
        self, endpoint: str, request: Request, account: PartnerAccount, grant: Grant, args: dict[str, str]
    ) -> Response:
        handlers = {
            "list_customers": self._list_customers,
            "get_customer": self._get_customer,
            "billing_profile": self._billing_profile,
            "customer_relationships": self._customer_relationships,
            "partner_relationships": self._partner_relationships,
            "audit_records": self._audit_records,
            "webhook_registration": self._webhook_registration,
            "webhook_events": self._webhook_events,
            "webhook_validation_events": self._webhook_validation_events,
        }
        try:
            answer = handlers[endpoint](request, account, grant, **args)
            return answer if isinstance(answer, Response) else _json(200, answer)
        except BadQuery as error:
            return _json(400, resources.error_body(BAD_REQUEST, str(error)))
        except ApiError as error:
            return _json(error.status, resources.error_body(error.code, error.description))
        except RegistrationError as error:
            return _json(error.status, resources.error_body(_STATUS_CODES.get(error.status, error.status), str(error)))

    def _refusal(self, grant: Grant | None) -> tuple[int, str] | None:
        """Partner Center's 401 (code, description) for a token it does not accept, or None."""
        if grant is None:
            return TOKEN_INVALID, "Partner token missing or invalid"
        if grant.audience == RETIRED_RESOURCE:
            return RETIRED_AUDIENCE, (f"The audience '{RETIRED_RESOURCE}' in the token is invalid and is no longer "
                                      "supported in Partner Center API.")
        expected = RESOURCES[self.state.cloud]
        if grant.audience != expected:
            return TOKEN_INVALID, f"The audience '{grant.audience}' in the token is invalid; expected '{expected}'."
        if grant.app_user and not grant.mfa:
            return MFA_REQUIRED, ("Multi-factor authentication is required for App+User access to Partner Center "
                                  "APIs: the token carries no MFA claim.")
        return None

    def _grant(self, request: Request) -> Grant | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return self.state.tokens.grant(token.strip())

    def _list_customers(self, request: Request, account: PartnerAccount, grant: Grant) -> dict[str, Any]:
        size = page_size(request.args.get("size"))
        position = self._continuation(request, "customers", account)
        if position is None:
            # From the start: keys of customers inserted at position 0 go below any fixed number.
            after, query = float("-inf"), customer_filter(request.args.get("filter"))
        else:
            after = Fraction(position["after"])
            query = position["filter"] and CustomerFilter(**position["filter"])
        if query is not None and query.field == "IndirectReseller" and not grant.app_user:
            raise _app_user_required("The IndirectReseller filter")
        partner_tenant_id = account.partner.tenant_id
        with self.state.lock:
            page, last, more = account.customer_page(
                after, size, lambda customer: query is None or query.matches(customer, partner_tenant_id)
            )
        base = self._link_base()
        next_link = None
        if more:
            token = self.state.continuation.issue({
                "kind": "customers", "partner": partner_tenant_id, "after": str(last),  # a sort key, maybe "7/2"
                "filter": query and {"field": query.field, "value": query.value},
            })
            next_link = _next_link(f"{base}/customers", size, token)
        return resources.collection(
            [resources.customer_list_item(customer) for customer in page], f"{base}/customers?size={size}", next_link
        )

    def _get_customer(
        self, request: Request, account: PartnerAccount, grant: Grant, customer_id: str
    ) -> dict[str, Any]:
        return resources.customer_resource(self._customer(account, customer_id))

    def _billing_profile(
        self, request: Request, account: PartnerAccount, grant: Grant, customer_id: str
    ) -> dict[str, Any]:
        return resources.billing_profile_resource(self._customer(account, customer_id))

    def _customer_relationships(
        self, request: Request, account: PartnerAccount, grant: Grant, customer_id: str
    ) -> dict[str, Any]:
        if not grant.app_user:
            raise _app_user_required("Listing a customer's indirect resellers")
        customer = self._customer(account, customer_id)
        reseller = account.reseller(customer.indirect_reseller_id) if customer.indirect_reseller_id else None
        if reseller is None:
            # "Get partners of a customer" answers null, or an empty body, when there is none.
            form = self.state.no_reseller_answer
            if form == "null":
                return None
            if form == "empty":
                return Response(b"", status=200, content_type=_JSON)
            return resources.collection([], f"/customers/{customer.tenant_id}/relationships")
        # The customer's partners: its indirect provider (this account) as well as its reseller.
        items = [
            resources.provider_relationship(account.partner),
            resources.partner_relationship(reseller, resources.RELATIONSHIP_INDIRECT_RESELLER_OF),
        ]
        return resources.collection(items, f"/customers/{customer.tenant_id}/relationships")

    def _partner_relationships(self, request: Request, account: PartnerAccount, grant: Grant) -> dict[str, Any]:
        if not grant.app_user:
            raise _app_user_required("Listing indirect resellers")
        wanted = request.args.get("relationship_type", "")
        normalized = wanted.replace("_", "").casefold()
        if normalized == "isindirectcloudsolutionproviderof":
            resellers = list(account.resellers)
        elif normalized == "isindirectresellerof":
            resellers = []  # simulated partners are providers, never someone's reseller
        else:
            raise BadQuery(
                f"The relationship_type '{wanted}' is not supported; use IsIndirectCloudSolutionProviderOf."
            )
        # Paged like the customer list when a page size is set (Partner Center does not document it).
        size = self.state.relationship_page_size or max(len(resellers), 1)
        position = self._continuation(request, "relationships", account)
        first = position["after"] + 1 if position else 0
        page = resellers[first:first + size]
        next_link = None
        if first + size < len(resellers):
            token = self.state.continuation.issue({
                "kind": "relationships", "partner": account.partner.tenant_id, "after": first + size - 1,
            })
            next_link = resources.link(
                f"{self._link_base()}/relationships?relationship_type={wanted}&seekOperation=Next",
                [("MS-ContinuationToken", token)],
            )
        items = [resources.partner_relationship(reseller, resources.RELATIONSHIP_INDIRECT_PROVIDER_OF)
                 for reseller in page]
        return resources.collection(items, f"/relationships?relationship_type={wanted}", next_link)

    def _audit_records(self, request: Request, account: PartnerAccount, grant: Grant) -> dict[str, Any]:
        size = page_size(request.args.get("size"))
        position = self._continuation(request, "audit", account)
        if position is None:
            start, end = audit_window(request.args.get("startDate"), request.args.get("endDate"), _today())
            query, after = audit_filter(request.args.get("filter")), None
        else:
            start = datetime.datetime.fromisoformat(position["start"])
            end = datetime.datetime.fromisoformat(position["end"])
            query, after = position["filter"] and AuditFilter(**position["filter"]), position["after"]
        with self.state.lock:
            page, last, more = account.audit_page(
                start, end, after, size, lambda entry: query is None or query.matches(entry)
            )
        base = self._link_base()
        next_link = token = None
        if more:
            token = self.state.continuation.issue({
                "kind": "audit", "partner": account.partner.tenant_id, "after": last,
                "start": start.isoformat(), "end": end.isoformat(),
                "filter": query and {"field": query.field, "value": query.value, "operator": query.operator},
            })
            next_link = _next_link(f"{base}/auditrecords", size, token)
        last_day = (end - datetime.timedelta(days=1)).date()
        self_uri = f"{base}/auditrecords?startDate={start.date()}&endDate={last_day}&size={size}"
        return resources.collection(
            [resources.audit_record(entry, account.partner) for entry in page], self_uri, next_link, token
        )

    def _webhook_registration(self, request: Request, account: PartnerAccount, grant: Grant) -> dict[str, Any]:
        partner = account.partner.tenant_id
        if request.method == "GET":
            return self.state.webhooks.registration(partner)
        if request.method == "DELETE":
            self.state.webhooks.unregister(partner)
            return Response(status=204)
        try:
            body = json.loads(request.get_data(cache=True) or b"null")
        except ValueError:
            raise ApiError(400, BAD_REQUEST, "The registration is not valid JSON.") from None
        return self.state.webhooks.register(partner, body, update=request.method == "PUT")

    def _webhook_events(self, request: Request, account: PartnerAccount, grant: Grant) -> list[str]:
        return list(WEBHOOK_EVENT_NAMES)

    def _webhook_validation_events(
        self, request: Request, account: PartnerAccount, grant: Grant, correlation_id: str | None = None
    ) -> Any:
        partner = account.partner.tenant_id
        if correlation_id is None:
            return {"correlationId": self.state.webhooks.send_validation_event(partner)}
        return self.state.webhooks.validation_event(partner, correlation_id)

    def _signing_certificate(self, name: str) -> Response:
        self.state.traffic.count("signing_certificate")  # what a receiver's certificate cache saves
        der = self.state.webhooks.certificate(name)
        if der is None:
            return _json(404, resources.error_body(NOT_FOUND, "The requested resource was not found."))
        return Response(der, status=200, content_type="application/pkix-cert")

    def _continuation(self, request: Request, kind: str, account: PartnerAccount) -> dict[str, Any] | None:
        """The walk position of a follow-up page request, or None for a first page."""
        if request.args.get("seekOperation", "").casefold() not in ("next", "1"):
            return None  # as at Microsoft, the token header is only read together with seekOperation=Next
        token = request.headers.get("MS-ContinuationToken")
        if not token:
            raise BadQuery("seekOperation=Next needs the MS-ContinuationToken header from the previous page.")
        position = self.state.continuation.read(token)
        if position.get("kind") != kind or position.get("partner") != account.partner.tenant_id:
            raise BadQuery("The continuation token does not belong to this query.")
        return position

    def _customer(self, account: PartnerAccount, customer_id: str) -> Customer:
        if not _GUID.match(customer_id):
            raise ApiError(400, INVALID_CUSTOMER_ID, f"The customer id '{customer_id}' is not a valid GUID.")
        tenant_id = customer_id.lower()
        with self.state.lock:
            customer = account.customer(tenant_id)
        if customer is not None:
            return customer
        if self.state.customer_elsewhere(tenant_id):
            raise ApiError(
                403, NO_RELATIONSHIP,
                f"There is no relationship between the partner {account.partner.tenant_id} "
                f"and the customer {tenant_id}.",
            )
        raise ApiError(404, TENANT_NOT_FOUND, f"The tenant {tenant_id} was not found.")

    def _link_base(self) -> str:
        return "/v1" if self.state.next_link_form == "v1" else ""

    # --- Entra ID ------------------------------------------------------------------------------

    def _serve_entra(self, request: Request, endpoint: str, tenant: str) -> Response:
        state = self.state
        state.traffic.count(endpoint)
        account = state.find_account(tenant) or _account_by_domain(state, tenant)
        fault = state.faults.take(endpoint, account.partner.tenant_id, None) if account else None
        if fault is not None:
            state.traffic.count("faults")
            response = _fault_response(fault, entra=True)
        else:
            try:
                if account is None:
                    raise EntraError(
                        400, "invalid_tenant", 90002,
                        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and "
                        "are signing into the correct cloud.",
                    )
                response = self._entra_answer(request, endpoint, account)
            except EntraError as error:
                response = _json(error.status, error.body())
        if "client-request-id" in request.headers:
            response.headers["client-request-id"] = request.headers["client-request-id"]
        response.headers["x-ms-request-id"] = str(uuid.uuid4())
        response.headers["Cache-Control"] = "no-store, no-cache"
        return response

    def _entra_answer(self, request: Request, endpoint: str, account: PartnerAccount) -> Response:
        partner = account.partner
        base_url = f"{request.scheme}://{request.host}"
        if endpoint == "openid_configuration":
            return _json(200, openid_configuration(base_url, partner.tenant_id))
        if endpoint == "jwks":
            return _json(200, {"keys": []})

        form = request.form
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if request.authorization and request.authorization.type == "basic":
            client_id = client_id or request.authorization.username
            client_secret = client_secret or request.authorization.password
        grant_type = form.get("grant_type")
        if not grant_type:
            raise _missing_parameter("grant_type")
        if not client_id:
            raise _missing_parameter("client_id")
        app = self.state.account_for_client(client_id)
        if app is not account:
            raise EntraError(
                400, "unauthorized_client", 700016,
                f"Application with identifier '{client_id}' was not found in the directory '{partner.tenant_id}'.",
            )
        if grant_type not in ("client_credentials", "refresh_token"):
            raise EntraError(
                400, "unsupported_grant_type", 70003, f"The app requested an unsupported grant type '{grant_type}'."
            )
        if not client_secret:
            raise EntraError(
                401, "invalid_client", 7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        if not secrets.compare_digest(client_secret.encode(), partner.client_secret.encode()):
            raise EntraError(
                401, "invalid_client", 7000215,
                f"Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{client_id}'.",
            )
        audience = check_scope(form.get("scope"), grant_type)
        lifetime = self.state.tokens.lifetime
        if grant_type == "client_credentials":
            token = self.state.tokens.issue_access_token(partner.tenant_id, app_user=False, audience=audience)
            return _json(
                200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime, "access_token": token}
            )

        refresh_token = form.get("refresh_token")
        if not refresh_token:
            raise _missing_parameter("refresh_token")
        successor = self.state.tokens.redeem_refresh_token(refresh_token, partner.tenant_id, partner.client_id)
        user_id = str(uuid.uuid5(uuid.UUID(partner.tenant_id), partner.admin_user))
        return _json(200, {
            "token_type": "Bearer",
            "scope": granted_scope(form.get("scope")),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": self.state.tokens.issue_access_token(
                partner.tenant_id, app_user=True, audience=audience, mfa=not account.tokens_without_mfa),
            "refresh_token": successor,
            "id_token": id_token(base_url, partner.tenant_id, partner.client_id, partner.admin_user, user_id),
            "client_info": client_info(user_id, partner.tenant_id),
        })

    # --- scenario controls ---------------------------------------------------------------------

    def _serve_control(self, request: Request, endpoint: str, args: dict[str, str]) -> Response:
        return serve_control(self.state, request, endpoint, args)


def _account_by_domain(state: PartnerCenterState, tenant: str) -> PartnerAccount | None:
    for partner in state.partners():
        if partner.domain == tenant.lower():
            return state.find_account(partner.tenant_id)
    return None


def _app_user_required(what: str) -> ApiError:
    return ApiError(
        403, AUTHORIZATION_FAILED, f"{what} requires app+user authentication; app-only tokens are not authorized."
    )


def _missing_parameter(name: str) -> EntraError:
    message = f"The request body must contain the following parameter: '{name}'."
    return EntraError(400, "invalid_request", 900144, message)


def _next_link(path: str, size: int, continuation_token: str) -> dict[str, Any]:
    return resources.link(f"{path}?size={size}&seekOperation=Next", [("MS-ContinuationToken", continuation_token)])


def _throttled(seconds: int | float, form: str = "seconds") -> Response:
    response = _json(429, resources.throttle_body(math.ceil(seconds)))
    if form == "seconds":
        response.headers["Retry-After"] = _retry_after_header(seconds)
    elif form == "http-date":
        # RFC 9110 allows an HTTP date; it has whole-second precision, so round up.
        response.headers["Retry-After"] = http_date(time.time() + math.ceil(seconds))
    return response


def _retry_after_header(seconds: int | float) -> str:
    # Whole seconds as Microsoft sends them; a fractional value (a test convenience) is kept as given.
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)


def _fault_response(fault: Fault, *, entra: bool) -> Response:
    if fault.kind == "status":
        if fault.status == 429 and not entra:
            response = _throttled(fault.retry_after if fault.retry_after is not None else 1, fault.retry_after_form)
            if fault.body is not None:
                response.set_data(_encode(fault.body))
            return response
        if fault.body is not None:
            body = fault.body
        elif entra:
            body = EntraError(
                fault.status,
                "temporarily_unavailable" if fault.status >= 500 or fault.status == 429 else "invalid_request",
                90033,
                "A transient error has occurred. Please try again.",
            ).body()
        else:
            body = resources.error_body(
                _STATUS_CODES.get(fault.status, fault.status), f"Injected fault: the service answered {fault.status}."
            )
        response = _json(fault.status, body)
        if fault.retry_after is not None:
            response.headers["Retry-After"] = _retry_after_header(fault.retry_after)
        return response
    if fault.kind == "drop":
        return _dropped_response()
    if fault.kind == "no_content":
        return Response(status=204)
    if fault.kind == "malformed":
        return Response(b'{"totalCount": 1, "items": [{"id": "', status=200, content_type=_JSON)
    return _json(200, fault.body)


def _dropped_response() -> Response:
    """Headers promising a body, half of it, then a closed connection."""
    promised = b'{"totalCount": 0, "items": [], "attributes": {"objectType": "Collection"}}' + b" " * 200

    def half_then_hang_up() -> Iterator[bytes]:
        yield promised[: len(promised) // 2]
        # werkzeug treats a ConnectionError as a dropped connection and closes it without a word.
        raise ConnectionResetError("simulated connection drop")

    response = Response(half_then_hang_up(), status=200, content_type=_JSON, direct_passthrough=True)
    response.headers["Content-Length"] = str(len(promised))
    return response


def _stamp_partner_center_headers(request: Request, response: Response) -> None:
    """Echo the tracing headers Partner Center echoes, generating those the client left out."""
    for header in ("MS-RequestId", "MS-CorrelationId"):
        response.headers[header] = request.headers.get(header) or str(uuid.uuid4())
    response.headers["MS-CV"] = request.headers.get("MS-CV") or f"{secrets.token_urlsafe(16)}.0"
    response.headers["MS-ServerId"] = "101112616"


def _json(status: int, body: Any) -> Response:
    return Response(_encode(body), status=status, content_type=_JSON)


def _encode(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _today() -> datetime.date:
    return datetime.datetime.now(datetime.timezone.utc).date()
