"""The few Partner Center resources the sync reads, parsed from the wire and checked."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping

from .errors import MalformedResponseError

GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

# relationshipToPartner values Partner Center documents (snake_case on the wire); `unknown` is
# the SDK's own. Any other value is kept as sent (normalised) and is simply not synced.
RELATIONSHIP_KINDS = frozenset({"reseller", "advisor", "syndication", "microsoft_support", "none", "unknown"})
# The kinds a partner can ask to sync (PARTNER_CENTER_RELATIONSHIP_KINDS).
SYNCABLE_RELATIONSHIP_KINDS = frozenset({"reseller", "advisor", "syndication", "microsoft_support"})
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def normalize_relationship_kind(value: str) -> str:
    """A relationship kind in Partner Center's wire form: lower-case snake_case
    ("MicrosoftSupport", "microsoft-support" and " Microsoft_Support " are all "microsoft_support");
    "" for a missing value."""
    text = _CAMEL_BOUNDARY.sub("_", value.strip())
    return re.sub(r"[\s\-]+", "_", text).lower()


def is_guid(value: object) -> bool:
    return isinstance(value, str) and bool(GUID.match(value))


@dataclass(frozen=True)
class NextLink:
    """Where the next page of a collection is: a uri and the headers to send with it."""

    uri: str
    headers: tuple[tuple[str, str], ...] = ()

    def to_dict(self) -> dict:
        return {"uri": self.uri, "headers": [list(pair) for pair in self.headers]}

    @classmethod
    def from_dict(cls, data: Mapping) -> "NextLink":
        return cls(uri=data["uri"], headers=tuple((k, v) for k, v in data.get("headers", [])))


@dataclass(frozen=True)
class Customer:
    """A customer list item: who the customer is, not its contacts (those are in the billing profile)."""

    tenant_id: str
    company_name: str
    domain: str
    relationship_to_partner: str
    indirect_reseller_id: str = ""

    @property
    def relationship_kind(self) -> str:
        """`relationship_to_partner` normalised (lower-case snake_case); may be a kind nobody
        documented yet: check with `is_known_relationship_kind`."""
        return normalize_relationship_kind(self.relationship_to_partner)


def is_synced_kind(customer: Customer, kinds: frozenset[str] | set[str]) -> bool:
    """True when the customer's relationship is one of `kinds` (normalised names, as
    `Settings.relationship_kinds` holds them): only those customers become organizations."""
    return customer.relationship_kind in kinds


def is_known_relationship_kind(kind: str) -> bool:
    """True for a relationship kind Partner Center documents (after normalisation)."""
    return normalize_relationship_kind(kind) in RELATIONSHIP_KINDS


@dataclass(frozen=True)
class MalformedItem:
    """A list item the client could not read; ``tenant_id`` is set when the id itself was readable."""

    index: int
    reason: str
    tenant_id: str = ""


@dataclass(frozen=True)
class CustomerPage:
    number: int
    customers: list[Customer]
    malformed: list[MalformedItem] = field(default_factory=list)
    next_link: NextLink | None = None


@dataclass(frozen=True)
class AuditRecord:
    """One activity-log entry; only what the sync acts on."""

    id: str
    customer_id: str
    operation_type: str
    operation_date: datetime
    operation_status: str
    customer_name: str = ""
    resource_new_value: str = ""


def parse_next_link(body: Mapping, where: str) -> NextLink | None:
    links = body.get("links")
    if links is None:
        return None
    if not isinstance(links, dict):
        raise MalformedResponseError(f"{where}: 'links' is not an object")
    nxt = links.get("next")
    if nxt is None:
        return None
    if not isinstance(nxt, dict) or not isinstance(nxt.get("uri"), str) or not nxt["uri"]:
        raise MalformedResponseError(f"{where}: 'links.next' has no uri")
    headers = []
    for header in nxt.get("headers") or []:
        if not isinstance(header, dict) or not isinstance(header.get("key"), str) or not isinstance(header.get("value"), str):
            raise MalformedResponseError(f"{where}: 'links.next.headers' holds an entry without string key and value")
        headers.append((header["key"], header["value"]))
    return NextLink(nxt["uri"], tuple(headers))


def items_of(body: Any, where: str) -> list:
    if not isinstance(body, dict):
        raise MalformedResponseError(f"{where}: expected a JSON object, got {type(body).__name__}")
    items = body.get("items")
    if not isinstance(items, list):
        raise MalformedResponseError(f"{where}: 'items' is missing or not a list")
    return items


def parse_customer(item: Any) -> Customer:
    """A list item (or a customer by id) as a Customer; ValueError names what is wrong."""
    if not isinstance(item, dict):
        raise ValueError(f"item is a {type(item).__name__}, not an object")
    profile = item.get("companyProfile")
    if not isinstance(profile, dict):
        raise ValueError("'companyProfile' is missing or not an object")
    tenant_id = item.get("id") or profile.get("tenantId")
    if not is_guid(tenant_id):
        raise ValueError(f"customer id {tenant_id!r} is not a GUID")
    fields = {}
    for name, source in (("company_name", "companyName"), ("domain", "domain")):
        value = profile.get(source, "")
        if not isinstance(value, str):
            raise ValueError(f"companyProfile.{source} is a {type(value).__name__}, not a string")
        fields[name] = value.strip()
    relationship = item.get("relationshipToPartner") or ""  # absent or null: a kind nobody named
    if not isinstance(relationship, str):
        raise ValueError("'relationshipToPartner' is not a string")
    reseller = item.get("associatedPartnerId", "") or ""
    if reseller and not is_guid(reseller):
        reseller = ""  # a non-tenant partner id (for example an MPN id) is not an indirect seller
    return Customer(
        tenant_id=tenant_id.lower(),
        relationship_to_partner=relationship,
        indirect_reseller_id=reseller.lower(),
        **fields,
    )


def readable_id(item: Any) -> str:
    """The tenant id of a broken item when it can still be read, so it is never taken for missing."""
    if isinstance(item, dict):
        for candidate in (item.get("id"), (item.get("companyProfile") or {}).get("tenantId") if isinstance(item.get("companyProfile"), dict) else None):
            if is_guid(candidate):
                return candidate.lower()
    return ""


def parse_audit_record(item: Any) -> AuditRecord:
    if not isinstance(item, dict):
        raise ValueError(f"record is a {type(item).__name__}, not an object")
    values = {}
    for name, source in (("id", "id"), ("customer_id", "customerId"), ("operation_type", "operationType"),
                         ("operation_status", "operationStatus"), ("customer_name", "customerName"),
                         ("resource_new_value", "resourceNewValue")):
        value = item.get(source, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ValueError(f"'{source}' is a {type(value).__name__}, not a string")
        values[name] = value
    if not values["operation_type"]:
        raise ValueError("'operationType' is missing")
    return AuditRecord(operation_date=parse_utc(item.get("operationDate")), **values)


def parse_utc(value: Any) -> datetime:
    if not isinstance(value, str) or not value:
        raise ValueError("'operationDate' is missing")
    text = value.strip().replace("Z", "+00:00")
    # Partner Center sends up to 7 fractional digits; Python reads at most 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"'operationDate' {value!r} is not an ISO date-time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)
