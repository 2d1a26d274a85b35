"""The Partner Center REST client: the operations the sync asks of Partner Center (customers, billing
profiles, indirect resellers, the activity log), on top of :mod:`.transport`."""

from __future__ import annotations

import json
import logging
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterator

from .errors import BadRequestError, MalformedResponseError
from .models import (
    AuditRecord,
    Customer,
    CustomerPage,
    MalformedItem,
    NextLink,
    is_guid,
    parse_audit_record,
    parse_customer,
    readable_id,
)
from .transport import Transport

log = logging.getLogger(__name__)

AUDIT_WINDOW_DAYS = 30  # one request may span at most 30 days
AUDIT_RETENTION_DAYS = 90  # a start date older than this is a 400


class PartnerCenterClient(Transport):
    """Reads customers, billing profiles and the activity log of one Partner Center account.

    One instance per account and run; safe to share between the threads of that run.
    """

    # -- customers -------------------------------------------------------------------------

    def iter_customer_pages(
        self, *, page_size: int = 500, start: NextLink | None = None, filter: dict | None = None
    ) -> Iterator[CustomerPage]:
        """Every page of the customer list, following ``links.next`` until there is none.

        ``start`` resumes a walk from a saved next link. Broken items are reported on the page
        (with their tenant id when readable), never silently dropped.
        """
        if start is None:
            params: dict[str, Any] | None = {"size": page_size}
            if filter is not None:
                params["filter"] = json.dumps(filter, separators=(",", ":"))
            url, headers = f"{self.api_url}/v1/customers", {}
        else:
            params, url, headers = None, self._resolve(start.uri), dict(start.headers)
        pages = self._pages("list_customers", url, params, headers, lambda n: f"customer list page {n}")
        for number, items, next_link in pages:
            customers, malformed = [], []
            for index, item in enumerate(items):
                try:
                    customers.append(parse_customer(item))
                except ValueError as exc:
                    malformed.append(MalformedItem(index=index, reason=str(exc), tenant_id=readable_id(item)))
            yield CustomerPage(number=number, customers=customers, malformed=malformed, next_link=next_link)

    def iter_customers(self, *, page_size: int = 500, filter: dict | None = None) -> Iterator[Customer]:
        """Every readable customer of the account, page after page."""
        for page in self.iter_customer_pages(page_size=page_size, filter=filter):
            yield from page.customers

    def get_customer(self, tenant_id: str) -> dict:
        """The full customer resource (company profile, billing profile, relationship)."""
        _require_guid(tenant_id)
        body = self._get("get_customer", f"{self.api_url}/v1/customers/{tenant_id}", what=f"customer {tenant_id}")
        if not isinstance(body, dict):
            raise MalformedResponseError(f"customer {tenant_id}: expected a JSON object", resource=tenant_id)
        return body

    def get_billing_profile(self, tenant_id: str) -> dict:
        """The customer's billing profile: its Billing Contact in Partner Center."""
        _require_guid(tenant_id)
        what = f"billing profile of customer {tenant_id}"
        body = self._get("billing_profile", f"{self.api_url}/v1/customers/{tenant_id}/profiles/billing", what=what)
        if not isinstance(body, dict):
            raise MalformedResponseError(f"{what}: expected a JSON object, got {type(body).__name__}", resource=tenant_id)
        return body

    # -- indirect model (app+user tokens) ---------------------------------------------------

    def iter_indirect_resellers(self) -> Iterator[str]:
        """Tenant ids of the indirect resellers this indirect provider has an active relationship with.

        Follows ``links.next`` where the answer has one; relationships in another state
        (inactive, terminated) are left out.
        """
        url = f"{self.api_url}/v1/relationships"
        pages = self._pages("partner_relationships", url, {"relationship_type": "IsIndirectCloudSolutionProviderOf"},
                            {}, lambda n: f"indirect resellers page {n}", tolerate_missing=True)
        for number, items, _ in pages:
            for index, item in enumerate(items):
                reseller = item.get("id") if isinstance(item, dict) else None
                if not is_guid(reseller):
                    raise MalformedResponseError(
                        f"indirect resellers page {number} item {index}: id {reseller!r} is not a tenant GUID")
                if _active(item):
                    yield reseller.lower()

    def iter_reseller_customers(self, reseller_id: str, *, page_size: int = 500) -> Iterator[str]:
        """Tenant ids of the customers attributed to one indirect reseller (the IndirectReseller filter)."""
        _require_guid(reseller_id)
        query = {"Field": "IndirectReseller", "Value": reseller_id, "Operator": "starts_with"}
        for customer in self.iter_customers(page_size=page_size, filter=query):
            yield customer.tenant_id

    def get_customer_indirect_reseller(self, tenant_id: str) -> str:
        """The indirect reseller a customer bought through, or "" when it has none.

        "Get partners of a customer" lists the indirect provider too, and answers ``null`` or an
        empty body when there is nobody: only an active reseller relationship counts.
        """
        _require_guid(tenant_id)
        what = f"relationships of customer {tenant_id}"
        pages = self._pages("customer_relationships", f"{self.api_url}/v1/customers/{tenant_id}/relationships",
                            None, {}, lambda n: what if n == 1 else f"{what} page {n}", tolerate_missing=True)
        for _, items, _ in pages:
            for item in items:
                if isinstance(item, dict) and is_guid(item.get("id")) and _active(item) and \
                        str(item.get("relationshipType", "")).replace("_", "").lower() == "isindirectresellerof":
                    return item["id"].lower()
        return ""

    # -- activity log ----------------------------------------------------------------------

    def iter_audit_records(
        self, since: datetime, until: datetime | None = None, *, page_size: int = 500
    ) -> Iterator[AuditRecord]:
        """Activity-log records dated from ``since`` up to ``until`` (default now), oldest window first.

        The range is cut into windows of at most 30 days, and clamped to the 90 days Partner
        Center keeps. Records that cannot be read are logged and skipped: the activity log is a
        hint for the incremental sync, the full reconciliation is the safety net.
        """
        now = datetime.now(timezone.utc)
        until = min(until or now, now)
        oldest = (now - timedelta(days=AUDIT_RETENTION_DAYS - 1)).date()
        first_day = max(since.astimezone(timezone.utc).date(), oldest)
        for start_day, end_day in audit_windows(first_day, until.date()):
            params = {"startDate": start_day.isoformat(), "endDate": end_day.isoformat(), "size": page_size}
            pages = self._pages("audit_records", f"{self.api_url}/v1/auditrecords", params, {},
                                lambda n: f"activity log {start_day}..{end_day} page {n}")
            for number, items, _ in pages:
                for index, item in enumerate(items):
                    try:
                        record = parse_audit_record(item)
                    except ValueError as exc:
                        log.warning("skipping unreadable record %d of activity log page %d: %s", index, number, exc)
                        continue
                    if since <= record.operation_date <= until:
                        yield record

    # -- any other call (webhook registration, ...) ------------------------------------------


def audit_windows(first_day: date, last_day: date) -> Iterator[tuple[date, date]]:
    """Consecutive [start, end] day ranges (end inclusive) no longer than the API allows."""
    day = first_day
    while day <= last_day:
        end = min(day + timedelta(days=AUDIT_WINDOW_DAYS - 1), last_day)
        yield day, end
        day = end + timedelta(days=1)


def _active(relationship: dict) -> bool:
    """A partner relationship counts when its state is active (no state given: active)."""
    state = relationship.get("state")
    return state is None or str(state).strip().lower() == "active"


def _require_guid(tenant_id: str) -> None:
    if not is_guid(tenant_id):
        raise BadRequestError(f"customer tenant id {tenant_id!r} is not a GUID")

