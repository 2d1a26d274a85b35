"""The scenario controls over HTTP (`/_simulator/...`), so another process can script a scenario.

Each route calls the `PartnerCenterState` method of the same name; JSON keys are camelCase. The
partner is `partnerTenantId` in the JSON body or the query string (absent: the default partner).
Control routes are not rate limited, delayed, faulted or counted.
"""

from __future__ import annotations

import json
from typing import Any, Callable

from werkzeug.exceptions import BadRequest, RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from devstack.simulator.accounts import Partner, UnknownCustomer
from devstack.simulator.state import PartnerCenterState, UnknownPartner


class _BadControlRequest(ValueError):
    pass


def serve_control(state: PartnerCenterState, request: Request, endpoint: str, args: dict[str, str]) -> Response:
    """Answer one control request."""
    handler: Callable[..., Any] = _HANDLERS[endpoint]
    try:
        body = _body(request)
        status, result = handler(state, request, body, **args)
    except (UnknownCustomer, UnknownPartner) as error:
        return _json(404, {"error": str(error.args[0] if error.args else error)})
    except (ValueError, TypeError) as error:  # _BadControlRequest included
        return _json(400, {"error": str(error)})
    if status == 204:
        return Response(status=204)
    return _json(status, result)


def _summary(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    base_url = f"{request.scheme}://{request.host}"
    return 200, {
        "apiUrl": base_url,
        "authorityUrl": base_url,
        "partnerTenantId": state.partner_tenant_id,
        "clientId": state.client_id,
        "partners": [_partner_json(partner) for partner in state.partners()],
        "settings": _settings_json(state),
    }


def _partners(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    if request.method == "GET":
        return 200, [_partner_json(partner) for partner in state.partners()]
    partner = state.add_partner(
        tenant_id=body.get("tenantId"),
        client_id=body.get("clientId"),
        client_secret=body.get("clientSecret"),
        customers=_integer(body, "customers", 0),
        seed=body.get("seed"),
        requests_per_minute=body.get("requestsPerMinute"),
        resellers=_integer(body, "resellers", 0),
        other_relationships=_integer(body, "otherRelationships", 0),
    )
    return 201, _partner_json(partner)


def _customers(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    partner = _partner(request, body)
    if request.method == "GET":
        return 200, state.customers(partner)
    tenant_id = state.accept_relationship(
        tenant_id=body.get("tenantId"),
        company_name=body.get("companyName"),
        domain=body.get("domain"),
        billing_profile=body.get("billingProfile"),
        partner_tenant_id=partner,
        indirect_reseller_id=body.get("indirectResellerId"),
        position=_optional_integer(body, "position"),
        before=_optional_text(body, "before"),
    )
    return 201, {"tenantId": tenant_id}


def _restore(state: PartnerCenterState, request: Request, body: dict[str, Any], tenant_id: str):
    state.restore_relationship(
        tenant_id, position=_optional_integer(body, "position"), before=_optional_text(body, "before"),
        partner_tenant_id=_partner(request, body),
    )
    return 200, {"tenantId": tenant_id}


def _expire_continuation_tokens(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    state.expire_continuation_tokens()
    return 204, None


def _customer(state: PartnerCenterState, request: Request, body: dict[str, Any], tenant_id: str):
    partner = _partner(request, body)
    if request.method == "DELETE":
        state.remove_relationship(tenant_id, partner)
        return 204, None
    company_name, kind = body.get("companyName"), body.get("relationshipToPartner")
    if not isinstance(company_name, str) and not isinstance(kind, str):
        raise _BadControlRequest("PATCH a customer with {\"companyName\": \"...\"} or {\"relationshipToPartner\": \"...\"}")
    if isinstance(kind, str):
        state.set_relationship_kind(tenant_id, kind, partner)
    if isinstance(company_name, str):
        state.rename_customer(tenant_id, company_name, partner)
    return 200, {key: value for key, value in (("tenantId", tenant_id), ("companyName", company_name),
                                               ("relationshipToPartner", kind)) if value is not None}


def _billing_profile(state: PartnerCenterState, request: Request, body: dict[str, Any], tenant_id: str):
    partner = _partner(request, body)
    if request.method == "PATCH":
        changes = {key: value for key, value in body.items() if key != "partnerTenantId"}
        state.update_billing_profile(tenant_id, changes, partner)
    return 200, state.billing_profile(tenant_id, partner)


def _counters(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    if request.method == "DELETE":
        state.reset_counters()
        return 204, None
    return 200, state.counters()


def _request_log(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    return 200, [
        {"time": at, "partnerTenantId": partner, "endpoint": endpoint, "status": status}
        for at, partner, endpoint, status in state.request_log()
    ]


def _peak_requests(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    try:
        window = float(request.args.get("windowSeconds", "60"))
    except ValueError:
        raise _BadControlRequest("windowSeconds must be a number") from None
    return 200, {"peakRequests": state.peak_requests(window, _partner(request, body))}


def _faults(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    if request.method == "DELETE":
        state.clear_faults()
        return 204, None
    if "endpoint" not in body or "kind" not in body:
        raise _BadControlRequest("a fault needs an endpoint and a kind")
    state.inject(
        body["endpoint"],
        body["kind"],
        times=_integer(body, "times", 1),
        status=_integer(body, "status", 503),
        retry_after=body.get("retryAfter"),
        body=body.get("body"),
        tenant_id=body.get("tenantId"),
        partner_tenant_id=_partner(request, body),
        retry_after_form=body.get("retryAfterForm", "seconds"),
    )
    return 201, {"queued": True}


def _expire_tokens(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    state.expire_tokens()
    return 204, None


def _refresh_tokens(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    return 201, {"refreshToken": state.issue_refresh_token(_partner(request, body))}


def _settings(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    if request.method == "PATCH":
        if "latency" in body:
            state.set_latency(float(body["latency"]))
        if "nextLinkForm" in body:
            state.set_next_link_form(body["nextLinkForm"])
        if "requestsPerMinute" in body:
            state.set_requests_per_minute(body["requestsPerMinute"], _partner(request, body))
        if "cloud" in body:
            state.set_cloud(body["cloud"])
        if "noResellerAnswer" in body:
            state.set_no_reseller_answer(body["noResellerAnswer"])
        if "relationshipPageSize" in body:
            state.set_relationship_page_size(body["relationshipPageSize"])
        if "tokensWithoutMfa" in body:
            if not isinstance(body["tokensWithoutMfa"], bool):
                raise _BadControlRequest("tokensWithoutMfa must be true or false")
            state.issue_tokens_without_mfa(body["tokensWithoutMfa"], _partner(request, body))
        if "webhookAttempts" in body or "webhookBackoff" in body:
            state.set_webhook_delivery(body.get("webhookAttempts"), body.get("webhookBackoff"))
    return 200, _settings_json(state)


def _reseller(state: PartnerCenterState, request: Request, body: dict[str, Any], reseller_id: str):
    if not isinstance(body.get("state"), str):
        raise _BadControlRequest("PATCH a reseller with {\"state\": \"Active\"|\"Inactive\"|...}")
    state.set_reseller_state(reseller_id, body["state"], _partner(request, body))
    return 200, {"resellerId": reseller_id, "state": body["state"]}


def _webhook_events(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    options = {"tenant_id": body.get("tenantId"), "url": body.get("url"), "partner_tenant_id": _partner(request, body)}
    if "eventName" in body:
        options["event_name"] = body["eventName"]
    if "changedAt" in body:
        options["changed_at"] = body["changedAt"]
    delivery = state.send_webhook_event(body.get("variant", "signed"), **options)
    return 201, delivery.as_dict()


def _webhook_replay(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    return 201, state.replay_webhook_event(_partner(request, body)).as_dict()


def _webhook_deliveries(state: PartnerCenterState, request: Request, body: dict[str, Any]):
    return 200, [delivery.as_dict() for delivery in state.webhook_deliveries()]


_HANDLERS: dict[str, Callable[..., Any]] = {
    "control_summary": _summary,
    "control_partners": _partners,
    "control_customers": _customers,
    "control_customer": _customer,
    "control_billing_profile": _billing_profile,
    "control_counters": _counters,
    "control_request_log": _request_log,
    "control_peak_requests": _peak_requests,
    "control_faults": _faults,
    "control_expire_tokens": _expire_tokens,
    "control_restore_customer": _restore,
    "control_reseller": _reseller,
    "control_expire_continuation_tokens": _expire_continuation_tokens,
    "control_refresh_tokens": _refresh_tokens,
    "control_settings": _settings,
    "control_webhook_events": _webhook_events,
    "control_webhook_replay": _webhook_replay,
    "control_webhook_deliveries": _webhook_deliveries,
}


def _body(request: Request) -> dict[str, Any]:
    if request.method in ("GET", "DELETE") or not request.get_data(cache=True):
        return {}
    try:
        body = json.loads(request.get_data(cache=True))
    except (ValueError, RequestEntityTooLarge, BadRequest):
        raise _BadControlRequest("the body must be a JSON object") from None
    if not isinstance(body, dict):
        raise _BadControlRequest("the body must be a JSON object")
    return body


def _partner(request: Request, body: dict[str, Any]) -> str | None:
    return body.get("partnerTenantId") or request.args.get("partnerTenantId")


def _integer(body: dict[str, Any], key: str, default: int) -> int:
    value = body.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool):
        raise _BadControlRequest(f"{key} must be an integer")
    return value


def _optional_integer(body: dict[str, Any], key: str) -> int | None:
    return None if body.get(key) is None else _integer(body, key, 0)


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise _BadControlRequest(f"{key} must be a string")
    return value


def _partner_json(partner: Partner) -> dict[str, Any]:
    return {
        "tenantId": partner.tenant_id,
        "clientId": partner.client_id,
        "clientSecret": partner.client_secret,  # a simulator's made-up secret, printed at start anyway
        "domain": partner.domain,
        "resellerIds": list(partner.reseller_ids),
    }


def _settings_json(state: PartnerCenterState) -> dict[str, Any]:
    return {
        "latency": state.latency,
        "nextLinkForm": state.next_link_form,
        "cloud": state.cloud,
        "noResellerAnswer": state.no_reseller_answer,
        "relationshipPageSize": state.relationship_page_size,
        "tokensWithoutMfa": {
            partner.tenant_id: state.account(partner.tenant_id).tokens_without_mfa for partner in state.partners()
        },
        "requestsPerMinute": {
            partner.tenant_id: state.account(partner.tenant_id).requests_per_minute for partner in state.partners()
        },
        "webhookAttempts": state.webhooks.attempts,
        "webhookBackoff": state.webhooks.backoff,
    }


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, ensure_ascii=False), status=status, content_type="application/json; charset=utf-8")
