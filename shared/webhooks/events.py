"""Partner Center webhook events: the payload, read strictly and with case-insensitive keys.

Microsoft's documentation shows PascalCase keys and its Swagger camelCase, so keys are matched
without regard to case. The event is thin: it names the customer (in ``ResourceUri``) and
nothing else worth trusting; processing fetches the customer to learn the rest.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import urlsplit

RESELLER_RELATIONSHIP_ACCEPTED = "reseller-relationship-accepted-by-customer"
INDIRECT_RESELLER_RELATIONSHIP_ACCEPTED = "indirect-reseller-relationship-accepted-by-customer"
TEST_CREATED = "test-created"
# The events that bring a customer onto the Platform, the only ones stored; every other name is
# acknowledged (200) and not stored (shared/webhooks/receiver.py).
RELATIONSHIP_EVENTS = (RESELLER_RELATIONSHIP_ACCEPTED, INDIRECT_RESELLER_RELATIONSHIP_ACCEPTED)
# What the registration helper subscribes to.
REGISTERED_EVENTS = RELATIONSHIP_EVENTS + (TEST_CREATED,)

# A real event is a few hundred bytes; anything near this cap is not from Partner Center.
MAX_EVENT_BYTES = 16 * 1024

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_CUSTOMER_PATH = re.compile(r"/customers/([^/]+)/?$", re.IGNORECASE)
_FIELDS = ("EventName", "ResourceUri", "ResourceName", "AuditUri", "ResourceChangeUtcDate")
_MAX_FIELD_CHARS = 2048


class InvalidEvent(ValueError):
    """The body is not a Partner Center event we can act on. ``pointer`` names the field."""

    def __init__(self, detail: str, pointer: str = "", *, not_json: bool = False) -> None:
        super().__init__(detail)
        self.pointer = pointer
        self.not_json = not_json


@dataclass(frozen=True)
class PartnerCenterEvent:
    """One webhook event. ``customer_tenant_id`` is set for the relationship events."""

    event_name: str
    resource_uri: str
    resource_name: str
    audit_uri: str
    resource_change_utc_date: str
    customer_tenant_id: str | None
    changed_at: datetime | None = None  # ResourceChangeUtcDate, read for the relationship events

    @property
    def is_relationship_event(self) -> bool:
        return self.event_name in RELATIONSHIP_EVENTS

    @property
    def key(self) -> str:
        """The event's identity: the same event delivered again (a Partner Center retry, a
        replay) has the same key, however its JSON was spaced or its keys cased."""
        identity = "\n".join((self.event_name, self.resource_uri.lower(), self.resource_change_utc_date,
                              self.audit_uri.lower()))
        return hashlib.sha256(identity.encode("utf-8")).hexdigest()


def parse_event(raw: bytes) -> PartnerCenterEvent:
    """The event in ``raw`` (the request body). Raises :class:`InvalidEvent`.

    Relationship events must name their customer by GUID in ``ResourceUri`` and carry every
    field the Swagger marks required; other events need only an ``EventName``.
    """
    try:
        value = json.loads(raw.decode("utf-8"), object_pairs_hook=_case_insensitive_members)
    except UnicodeDecodeError:
        raise InvalidEvent("the body is not UTF-8", not_json=True) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidEvent(f"the body is not valid JSON ({exc})", not_json=True) from None
    if not isinstance(value, dict):
        raise InvalidEvent("the body must be a JSON object")
    fields = {}
    for name in _FIELDS:
        item = value.get(name.lower())
        if item is not None and not isinstance(item, str):
            raise InvalidEvent(f"{name} must be a string", f"/{name}")
        if item is not None and len(item) > _MAX_FIELD_CHARS:
            raise InvalidEvent(f"{name} is longer than {_MAX_FIELD_CHARS} characters", f"/{name}")
        fields[name] = (item or "").strip()
    event_name = fields["EventName"].lower()
    if not event_name:
        raise InvalidEvent("EventName is missing", "/EventName")
    tenant_id = changed_at = None
    if event_name in RELATIONSHIP_EVENTS:
        for name in ("ResourceUri", "ResourceName", "ResourceChangeUtcDate"):
            if not fields[name]:
                raise InvalidEvent(f"{name} is missing", f"/{name}")
        tenant_id = customer_tenant_id(fields["ResourceUri"])
        changed_at = utc_date(fields["ResourceChangeUtcDate"])
    return PartnerCenterEvent(
        event_name=event_name,
        resource_uri=fields["ResourceUri"],
        resource_name=fields["ResourceName"],
        audit_uri=fields["AuditUri"],
        resource_change_utc_date=fields["ResourceChangeUtcDate"],
        customer_tenant_id=tenant_id,
        changed_at=changed_at,
    )


def utc_date(text: str) -> datetime:
    """``ResourceChangeUtcDate`` as an aware UTC datetime (ISO 8601; no offset means UTC; the
    seven fractional digits .NET writes are allowed). Raises :class:`InvalidEvent`."""
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidEvent(f"ResourceChangeUtcDate is not an ISO 8601 date: {text[:40]!r}",
                           "/ResourceChangeUtcDate") from None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def customer_tenant_id(resource_uri: str) -> str:
    """The customer's tenant id from ``.../v1/customers/{tenantId}``, lower-cased; a GUID or
    :class:`InvalidEvent`."""
    found = _CUSTOMER_PATH.search(urlsplit(resource_uri).path)
    if not found:
        raise InvalidEvent("ResourceUri does not name a customer (…/customers/{tenantId})", "/ResourceUri")
    if not _GUID.fullmatch(found.group(1)):
        raise InvalidEvent(f"the customer id in ResourceUri is not a GUID: {found.group(1)[:80]!r}", "/ResourceUri")
    return found.group(1).lower()


def _case_insensitive_members(pairs: list[tuple[str, object]]) -> dict:
    members: dict = {}
    for name, item in pairs:
        folded = name.lower()
        if folded in members:
            # "EventName" and "eventName" in one object: which one counts would be a guess.
            raise ValueError(f"member {name!r} appears twice (keys are compared without case)")
        members[folded] = item
    return members
