"""The JSON shapes Partner Center serves, built from the simulator's state.

Every shape follows Microsoft's Swagger definitions (copied into `tests/simulator/swagger/`) and
the observed wire format: enums as snake_case strings, optional fields absent rather than null,
link uris relative to the API's `/v1` base, audit values as JSON strings with PascalCase keys.
"""

from __future__ import annotations

import datetime
import json
from typing import Any, Iterable, Mapping

from devstack.simulator.accounts import AuditEntry, Partner
from devstack.simulator.estate import Customer, Reseller

RELATIONSHIP_INDIRECT_PROVIDER_OF = "is_indirect_cloud_solution_provider_of"
RELATIONSHIP_INDIRECT_RESELLER_OF = "is_indirect_reseller_of"


def link(uri: str, headers: Iterable[tuple[str, str]] = ()) -> dict[str, Any]:
    """A Partner Center link: a GET of `uri` with the listed headers."""
    return {"uri": uri, "method": "GET", "headers": [{"key": key, "value": value} for key, value in headers]}


def collection(
    items: list[dict[str, Any]],
    self_uri: str,
    next_link: dict[str, Any] | None = None,
    continuation_token: str | None = None,
) -> dict[str, Any]:
    """A collection page: `totalCount` is the count of this page, not a grand total."""
    body: dict[str, Any] = {"totalCount": len(items), "items": items, "links": {"self": link(self_uri)}}
    if next_link is not None:
        body["links"]["next"] = next_link
    if continuation_token is not None:
        body["continuationToken"] = continuation_token  # only the audit collection carries it (Swagger)
    body["attributes"] = {"objectType": "Collection"}
    return body


def company_profile(customer: Customer) -> dict[str, Any]:
    """The company profile as embedded in a customer."""
    return {
        "tenantId": customer.tenant_id,
        "domain": customer.domain,
        "companyName": customer.company_name,
        "links": {"self": link(f"/customers/{customer.tenant_id}/profiles/company")},
        "attributes": {"objectType": "CustomerCompanyProfile"},
    }


def customer_list_item(customer: Customer) -> dict[str, Any]:
    """A customer as listed by `GET /v1/customers`: no billing profile."""
    return {
        "id": customer.tenant_id,
        "companyProfile": company_profile(customer),
        "relationshipToPartner": customer.relationship_to_partner,
        "links": {"self": link(f"/customers/{customer.tenant_id}")},
        "attributes": {"objectType": "Customer"},
    }


def customer_resource(customer: Customer) -> dict[str, Any]:
    """The full customer served by `GET /v1/customers/{id}`."""
    body: dict[str, Any] = {
        "id": customer.tenant_id,
        "commerceId": customer.commerce_id,
        "companyProfile": company_profile(customer),
        "billingProfile": billing_profile_resource(customer),
        "relationshipToPartner": customer.relationship_to_partner,
        "allowDelegatedAccess": customer.allow_delegated_access,
    }
    # Without delegated admin rights Partner Center leaves the custom domains out.
    if customer.allow_delegated_access:
        body["customDomains"] = list(customer.custom_domains)
    if customer.indirect_reseller_id:
        body["associatedPartnerId"] = customer.indirect_reseller_id
    body["links"] = {"self": link(f"/customers/{customer.tenant_id}")}
    body["attributes"] = {"objectType": "Customer"}
    return body


def billing_profile_resource(customer: Customer) -> dict[str, Any]:
    """The billing profile served by `GET /v1/customers/{id}/profiles/billing`."""
    body = _plain(customer.billing_profile)
    body["links"] = {"self": link(f"/customers/{customer.tenant_id}/profiles/billing")}
    body["attributes"] = {"etag": customer.billing_etag, "objectType": "CustomerBillingProfile"}
    return body


def partner_relationship(reseller: Reseller, relationship_type: str) -> dict[str, Any]:
    """A reseller relationship as listed by the indirect-reseller endpoints."""
    return {
        "id": reseller.tenant_id,
        "name": reseller.name,
        "relationshipType": relationship_type,
        "state": reseller.state,
        "mpnId": reseller.mpn_id,
        "location": reseller.location,
        "attributes": {"objectType": "PartnerRelationship"},
    }


def provider_relationship(partner: Partner) -> dict[str, Any]:
    """The indirect provider itself, as "get partners of a customer" lists it beside the reseller."""
    return {
        "id": partner.tenant_id,
        "name": f"Indirect provider {partner.domain}",
        "relationshipType": RELATIONSHIP_INDIRECT_PROVIDER_OF,
        "state": "Active",
        "attributes": {"objectType": "PartnerRelationship"},
    }


def audit_record(entry: AuditEntry, partner: Partner) -> dict[str, Any]:
    """An activity log record; an old or new value that does not exist is absent."""
    body: dict[str, Any] = {
        "id": entry.id,
        "partnerId": partner.tenant_id,
        "customerId": entry.customer_id,
        "customerName": entry.customer_name,
        "userPrincipalName": partner.admin_user,
        "applicationId": partner.client_id,
        "resourceType": "customer",
    }
    for name, value in (("resourceOldValue", entry.old_value), ("resourceNewValue", entry.new_value)):
        if value is not None:
            body[name] = audit_value(value)
    body.update({
        "operationType": entry.operation_type,
        "operationDate": wire_datetime(entry.operation_date),
        "operationStatus": "succeeded",
        "customizedData": [
            {"key": "CustomerId", "value": entry.customer_id},
            {"key": "CompanyName", "value": entry.customer_name},
        ],
        "attributes": {"objectType": "AuditRecord"},
    })
    return body


def audit_value(value: Customer | Mapping[str, Any]) -> str:
    """An audit record's resourceOldValue/resourceNewValue: a JSON string with PascalCase keys."""
    if isinstance(value, Customer):
        snapshot = customer_resource(value)
        snapshot.pop("links")
        snapshot["billingProfile"].pop("links")
        snapshot["companyProfile"].pop("links")
        value = snapshot
    return json.dumps(pascal_case(value), ensure_ascii=False)


def pascal_case(value: Any) -> Any:
    """`value` with every object key's first letter upper-cased, as .NET serializes audit values."""
    if isinstance(value, Mapping):
        return {key[:1].upper() + key[1:]: pascal_case(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [pascal_case(item) for item in value]
    return value


def wire_datetime(moment: datetime.datetime) -> str:
    """UTC with seven fractional digits and a `Z`, as Partner Center (.NET ticks) writes dates."""
    moment = moment.astimezone(datetime.timezone.utc)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond * 10:07d}Z"


def error_body(code: int, description: str) -> dict[str, Any]:
    """The documented error shape; `code` is a number on the wire although documented as a string."""
    return {"code": code, "description": description, "data": [], "source": "PartnerCenter"}


def throttle_body(seconds: int) -> dict[str, Any]:
    """The throttling shape, which differs from the normal error shape."""
    return {"statusCode": 429, "message": f"Rate limit is exceeded. Try again in {seconds} seconds."}


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value
