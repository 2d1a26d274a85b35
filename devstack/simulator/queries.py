"""The list endpoints' query language: page size, filters, the audit date window, continuation tokens.

Everything here raises `BadQuery` for input Partner Center would answer with 400.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Any

from devstack.simulator.accounts import AuditEntry
from devstack.simulator.estate import Customer

DEFAULT_PAGE_SIZE = 500
MAX_AUDIT_SPAN_DAYS = 30
AUDIT_RETENTION_DAYS = 90

CUSTOMER_FILTER_FIELDS = ("CompanyName", "Domain", "IndirectReseller", "IndirectCloudSolutionProvider")
AUDIT_FILTER_FIELDS = ("CustomerId", "CompanyName", "ResourceType")


# Partner Center documents no specific code for this; it is a 400 in the general error shape.
EXPIRED_CONTINUATION = "The continuation token is invalid or has expired. Start the query again without it."


class BadQuery(ValueError):
    """A query Partner Center rejects with 400."""


def page_size(raw: str | None, default: int = DEFAULT_PAGE_SIZE) -> int:
    """The `size` parameter: a positive integer, `default` when absent."""
    if raw is None:
        return default
    try:
        size = int(raw)
    except ValueError:
        raise BadQuery(f"The size parameter '{raw}' is not a valid integer.") from None
    if size <= 0:
        raise BadQuery(f"The size parameter must be greater than zero, not {size}.")
    return size


@dataclass(frozen=True)
class CustomerFilter:
    """A `starts_with` filter on one customer field, compared case-insensitively."""

    field: str
    value: str

    def matches(self, customer: Customer, partner_tenant_id: str) -> bool:
        """True when the customer passes this filter in the given partner's account."""
        prefix = self.value.casefold()
        if self.field == "CompanyName":
            return customer.company_name.casefold().startswith(prefix)
        if self.field == "Domain":
            return customer.domain.casefold().startswith(prefix)
        if self.field == "IndirectReseller":
            return bool(customer.indirect_reseller_id) and customer.indirect_reseller_id.startswith(prefix)
        # IndirectCloudSolutionProvider: customers this account serves as indirect provider, via a reseller.
        return bool(customer.indirect_reseller_id) and partner_tenant_id.startswith(prefix)


@dataclass(frozen=True)
class AuditFilter:
    """An audit filter: `equals` or `substring` on the customer id, company name or resource type."""

    field: str
    value: str
    operator: str

    def matches(self, entry: AuditEntry) -> bool:
        """True when the record passes this filter."""
        actual = {"CustomerId": entry.customer_id, "CompanyName": entry.customer_name, "ResourceType": "customer"}
        text, wanted = actual[self.field].casefold(), self.value.casefold()
        return text == wanted if self.operator == "equals" else wanted in text


def customer_filter(raw: str | None) -> CustomerFilter | None:
    """Parse `filter=` of the customer list: JSON `{"Field", "Value", "Operator": "starts_with"}`."""
    if raw is None:
        return None
    field, value, operator = _filter_parts(raw, CUSTOMER_FILTER_FIELDS)
    if operator != "starts_with":
        raise BadQuery(f"The filter operator '{operator}' is not supported for customers; use starts_with.")
    return CustomerFilter(field, value)


def audit_filter(raw: str | None) -> AuditFilter | None:
    """Parse `filter=` of the activity log: JSON `{"Field", "Value", "Operator": "equals"|"substring"}`."""
    if raw is None:
        return None
    field, value, operator = _filter_parts(raw, AUDIT_FILTER_FIELDS)
    if operator not in ("equals", "substring"):
        raise BadQuery(f"The filter operator '{operator}' is not supported for audit records.")
    return AuditFilter(field, value, operator)


def _filter_parts(raw: str, fields: tuple[str, ...]) -> tuple[str, str, str]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise BadQuery("The filter is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise BadQuery("The filter must be a JSON object with Field, Value and Operator.")
    # The SDK writes PascalCase keys, hand-written clients often camelCase: accept both.
    parts = {str(key).casefold(): value for key, value in parsed.items()}
    field, value, operator = parts.get("field"), parts.get("value"), parts.get("operator")
    if not all(isinstance(part, str) for part in (field, value, operator)):
        raise BadQuery("The filter needs string Field, Value and Operator.")
    canonical = next((name for name in fields if name.casefold() == field.casefold()), None)
    if canonical is None:
        raise BadQuery(f"The filter field '{field}' is not supported; use one of {', '.join(fields)}.")
    normalized_operator = operator.replace("_", "").casefold()
    operator = {"startswith": "starts_with", "equals": "equals", "substring": "substring"}.get(
        normalized_operator, operator
    )
    return canonical, value, operator


def audit_window(
    start_raw: str | None, end_raw: str | None, today: datetime.date
) -> tuple[datetime.datetime, datetime.datetime]:
    """The [start, end) UTC range of whole days an activity log request covers.

    Dates are `yyyy-mm-dd` or ISO date-times (the day is what counts); the end date is inclusive
    and defaults to today. At most 30 days between the two dates, nothing older than 90 days.
    """
    if not start_raw:
        raise BadQuery("The startDate parameter is required.")
    start = _day(start_raw, "startDate")
    end = _day(end_raw, "endDate") if end_raw else today
    if end < start:
        raise BadQuery(f"The endDate {end} is before the startDate {start}.")
    if (end - start).days > MAX_AUDIT_SPAN_DAYS:
        raise BadQuery(f"The date range cannot span more than {MAX_AUDIT_SPAN_DAYS} days.")
    if (today - start).days > AUDIT_RETENTION_DAYS:
        raise BadQuery(f"Audit records are only kept for {AUDIT_RETENTION_DAYS} days; startDate {start} is too old.")
    utc = datetime.timezone.utc
    return (
        datetime.datetime.combine(start, datetime.time(), utc),
        datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time(), utc),
    )


def _day(raw: str, name: str) -> datetime.date:
    try:
        if len(raw) == 10:
            return datetime.date.fromisoformat(raw)
        moment = datetime.datetime.fromisoformat(raw)
    except ValueError:
        raise BadQuery(f"The {name} '{raw}' is not a date (yyyy-mm-dd) or an ISO date-time.") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.date()


class ContinuationTokens:
    """Opaque, tamper-evident continuation tokens (`MS-ContinuationToken`).

    A token carries the position of the walk (the last slot or record served) and the query it
    belongs to, signed with this simulator's key: a garbled, foreign or stale token is a 400.
    """

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def rotate(self) -> None:
        """A new signing key: every token issued so far is refused from now on (a 400), as when
        Partner Center's paging state behind a token has expired."""
        self._key = secrets.token_bytes(32)

    def issue(self, position: dict[str, Any]) -> str:
        """A token for this walk position."""
        payload = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:18]
        return f"{_b64(payload)}.{_b64(mac)}"

    def read(self, token: str) -> dict[str, Any]:
        """The walk position in a token this simulator issued, or `BadQuery`."""
        try:
            payload_text, mac_text = token.split(".")
            payload, mac = _unb64(payload_text), _unb64(mac_text)
        except (ValueError, binascii.Error):
            raise BadQuery("The continuation token is malformed.") from None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:18]
        if not hmac.compare_digest(mac, expected):
            raise BadQuery(EXPIRED_CONTINUATION)
        return json.loads(payload)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
