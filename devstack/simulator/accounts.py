"""One partner tenant's Partner Center account: its customers in list order and its activity log.

Customers sit in an append-only sequence of slots: a new customer takes the next slot (the end of
the list), an ended relationship empties its slot. A continuation token only has to remember the
last slot it served, so a walk sees customers added behind it and never skips one when another
leaves. The activity log is kept in operation-date order for the same reason.

Not thread-safe on its own: `PartnerCenterState` serializes access.
"""

from __future__ import annotations

import bisect
import datetime
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator, Mapping

from devstack.simulator.estate import Customer, EstateGenerator, Reseller, merge_billing_profile, new_etag, new_guid

# How far back the seeded estate's add_customer records go.
SEEDED_HISTORY = datetime.timedelta(days=20)

ADD_CUSTOMER = "add_customer"
UPDATE_BILLING_PROFILE = "update_customer_billing_profile"
UPDATE_COMPANY_NAME = "update_customer_partner_contract_company_name"
REMOVE_RELATIONSHIP = "remove_partner_customer_relationship"


class UnknownCustomer(LookupError):
    """The partner has no current relationship with this customer."""


@dataclass(frozen=True)
class Partner:
    """A partner tenant's identity and its app's credentials (app-only and app+user)."""

    tenant_id: str
    client_id: str
    client_secret: str
    domain: str
    reseller_ids: tuple[str, ...] = ()

    @property
    def admin_user(self) -> str:
        """The partner admin whose name appears in the activity log and in app+user tokens."""
        return f"admin@{self.domain}"


@dataclass(frozen=True)
class AuditEntry:
    """One activity log record; values are rendered to PascalCase JSON strings when served."""

    id: str
    operation_date: datetime.datetime
    operation_type: str
    customer_id: str
    customer_name: str
    old_value: Customer | Mapping[str, Any] | None
    new_value: Customer | Mapping[str, Any] | None


class PartnerAccount:
    """The account's estate, its resellers (for an indirect provider), and its activity log."""

    def __init__(
        self,
        partner: Partner,
        generator: EstateGenerator,
        resellers: list[Reseller],
        customers: int,
        requests_per_minute: int | None,
        now: datetime.datetime,
    ) -> None:
        self.partner = partner
        self.resellers = resellers
        self.requests_per_minute = requests_per_minute
        self._generator = generator
        self._slots: list[Customer | None] = []
        self._positions: dict[str, int] = {}
        self._former: dict[str, Customer] = {}  # customers whose relationship ended
        self._log: list[AuditEntry] = []
        self._seed(customers, now)

    # --- reading -------------------------------------------------------------------------------

    def customer(self, tenant_id: str) -> Customer | None:
        """The current customer with this tenant id, if the relationship stands."""
        position = self._positions.get(tenant_id)
        return None if position is None else self._slots[position]

    def relationship_ended(self, tenant_id: str) -> bool:
        """True when this customer was the partner's and the relationship ended."""
        return tenant_id in self._former

    def listed(self) -> Iterator[Customer]:
        """The current customers in list order."""
        return (customer for customer in self._slots if customer is not None)

    def reseller(self, tenant_id: str) -> Reseller | None:
        """The account's reseller with this tenant id, if any."""
        return next((reseller for reseller in self.resellers if reseller.tenant_id == tenant_id), None)

    def customer_page(
        self, after: int, size: int, matches: Callable[[Customer], bool]
    ) -> tuple[list[Customer], int, bool]:
        """Up to `size` matching customers in slots after `after`: (page, last slot served, more remain)."""
        page: list[Customer] = []
        last = after
        for position in range(after + 1, len(self._slots)):
            customer = self._slots[position]
            if customer is None or not matches(customer):
                continue
            if len(page) == size:
                return page, last, True
            page.append(customer)
            last = position
        return page, last, False

    def audit_page(
        self,
        start: datetime.datetime,
        end: datetime.datetime,
        after: int | None,
        size: int,
        matches: Callable[[AuditEntry], bool],
    ) -> tuple[list[AuditEntry], int, bool]:
        """Up to `size` matching records dated in [start, end) after index `after` (None: from the start)."""
        if after is None:
            first = bisect.bisect_left(self._log, start, key=lambda entry: entry.operation_date)
        else:
            first = after + 1
        page: list[AuditEntry] = []
        last = first - 1
        for index in range(first, len(self._log)):
            entry = self._log[index]
            if entry.operation_date >= end:
                break
            if not matches(entry):
                continue
            if len(page) == size:
                return page, last, True
            page.append(entry)
            last = index
        return page, last, False

    # --- scenarios -----------------------------------------------------------------------------

    def accept_relationship(self, now: datetime.datetime, **given: Any) -> Customer:
        """A customer accepts the reseller relationship: it joins the end of the list."""
        tenant_id = given.get("tenant_id")
        if tenant_id is not None and tenant_id in self._positions:
            raise ValueError(f"customer {tenant_id} already has a relationship with this partner")
        reseller_id = given.get("indirect_reseller_id")
        if reseller_id is not None and self.reseller(reseller_id) is None:
            raise ValueError(f"{reseller_id} is not an indirect reseller of partner {self.partner.tenant_id}")
        customer = self._generator.customer(**given)
        self._former.pop(customer.tenant_id, None)
        self._append(customer)
        self._write(now, ADD_CUSTOMER, customer, None, customer)
        return customer

    def update_billing_profile(self, tenant_id: str, changes: Mapping[str, Any], now: datetime.datetime) -> Customer:
        """Merge `changes` into the billing profile (None removes a field) and bump its etag."""
        old = self._current(tenant_id)
        profile = merge_billing_profile(old.billing_profile, changes)
        new = replace(old, billing_profile=profile, billing_etag=new_etag(self._generator.rng))
        self._slots[self._positions[tenant_id]] = new
        self._write(now, UPDATE_BILLING_PROFILE, new, _audited_profile(old), _audited_profile(new))
        return new

    def rename(self, tenant_id: str, company_name: str, now: datetime.datetime) -> Customer:
        """The customer's company name changes (company profile and billing profile alike)."""
        old = self._current(tenant_id)
        profile = merge_billing_profile(old.billing_profile, {"companyName": company_name})
        new = replace(
            old, company_name=company_name, billing_profile=profile, billing_etag=new_etag(self._generator.rng)
        )
        self._slots[self._positions[tenant_id]] = new
        self._write(
            now, UPDATE_COMPANY_NAME, new,
            {"tenantId": tenant_id, "companyName": old.company_name},
            {"tenantId": tenant_id, "companyName": company_name},
        )
        return new

    def remove_relationship(self, tenant_id: str, now: datetime.datetime) -> None:
        """The relationship ends: the customer leaves the list and per-customer calls answer 403."""
        old = self._current(tenant_id)
        position = self._positions.pop(tenant_id)
        self._slots[position] = None
        self._former[tenant_id] = old
        self._write(now, REMOVE_RELATIONSHIP, old, old, replace(old, relationship_to_partner="none"))

    # --- internals -----------------------------------------------------------------------------

    def _seed(self, count: int, now: datetime.datetime) -> None:
        reseller_ids = [reseller.tenant_id for reseller in self.resellers]
        rng = self._generator.rng
        step = SEEDED_HISTORY / max(count, 1)
        start = now - SEEDED_HISTORY
        for index, customer in enumerate(self._generator.customers(count, reseller_ids)):
            self._append(customer)
            # Spread over the last days in list order, so the log stays sorted by date.
            self._write(start + step * (index + rng.random()), ADD_CUSTOMER, customer, None, customer)

    def _append(self, customer: Customer) -> None:
        self._positions[customer.tenant_id] = len(self._slots)
        self._slots.append(customer)

    def _current(self, tenant_id: str) -> Customer:
        customer = self.customer(tenant_id)
        if customer is None:
            raise UnknownCustomer(f"partner {self.partner.tenant_id} has no customer {tenant_id}")
        return customer

    def _write(self, when: datetime.datetime, operation: str, customer: Customer, old: Any, new: Any) -> None:
        if self._log and when < self._log[-1].operation_date:
            when = self._log[-1].operation_date  # a clock step back must not unsort the log
        self._log.append(AuditEntry(
            id=new_guid(self._generator.rng),
            operation_date=when,
            operation_type=operation,
            customer_id=customer.tenant_id,
            customer_name=customer.company_name,
            old_value=old,
            new_value=new,
        ))


def _audited_profile(customer: Customer) -> dict[str, Any]:
    attributes = {"etag": customer.billing_etag, "objectType": "CustomerBillingProfile"}
    return {**customer.billing_profile, "attributes": attributes}
