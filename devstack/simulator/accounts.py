"""One partner tenant's Partner Center account: its customers in list order and its activity log.

Customers sit in a sequence of slots ordered by a sort key: a new customer takes a slot at the end
of the list, or (a scenario) one between two others with a key between theirs; an ended
relationship empties its slot, and a restored one fills it again. A continuation token only has to
remember the key of the last slot it served, so a walk sees customers added behind it, never sees
one added before its position, and never skips one when another leaves. The activity log is kept
in operation-date order for the same reason.

Not thread-safe on its own: `PartnerCenterState` serializes access.
"""

from __future__ import annotations

import bisect
import datetime
from dataclasses import dataclass, replace
from fractions import Fraction
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
        others: list[Customer] | None = None,
    ) -> None:
        self.partner = partner
        self.resellers = resellers
        self.requests_per_minute = requests_per_minute
        self.tokens_without_mfa = False  # app+user tokens issued from now on lack the MFA claim
        self._generator = generator
        self._slots: list[Customer | None] = []
        # Sort keys of the slots, ascending: ints for appended slots, Fractions between two others.
        self._keys: list[int | Fraction] = []
        self._positions: dict[str, int | Fraction] = {}  # tenant id -> its slot's key
        self._former: dict[str, Customer] = {}  # customers whose relationship ended
        self._former_keys: dict[str, int | Fraction] = {}  # ... and the key of the slot they left
        self._log: list[AuditEntry] = []
        self._seed(customers, now, others or [])

    # --- reading -------------------------------------------------------------------------------

    def customer(self, tenant_id: str) -> Customer | None:
        """The current customer with this tenant id, if the relationship stands."""
        key = self._positions.get(tenant_id)
        return None if key is None else self._slots[self._index(key)]

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
        self, after: int | Fraction, size: int, matches: Callable[[Customer], bool]
    ) -> tuple[list[Customer], int | Fraction, bool]:
        """Up to `size` matching customers in slots with a key above `after` (-inf: from the start):
        (page, key of the last slot served, more remain)."""
        page: list[Customer] = []
        last = after
        for position in range(bisect.bisect_right(self._keys, after), len(self._slots)):
            customer = self._slots[position]
            if customer is None or not matches(customer):
                continue
            if len(page) == size:
                return page, last, True
            page.append(customer)
            last = self._keys[position]
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

    def accept_relationship(
        self, now: datetime.datetime, *, position: int | None = None, before: str | None = None, **given: Any
    ) -> Customer:
        """A customer accepts the reseller relationship: it joins the end of the list, or the list
        position `position` (0 = first), or the place just before customer `before`."""
        tenant_id = given.get("tenant_id")
        if tenant_id is not None and tenant_id in self._positions:
            raise ValueError(f"customer {tenant_id} already has a relationship with this partner")
        reseller_id = given.get("indirect_reseller_id")
        if reseller_id is not None and self.reseller(reseller_id) is None:
            raise ValueError(f"{reseller_id} is not an indirect reseller of partner {self.partner.tenant_id}")
        key = self._new_key(position, before)  # before generating: a bad position changes nothing
        customer = self._generator.customer(**given)
        self._former.pop(customer.tenant_id, None)
        self._former_keys.pop(customer.tenant_id, None)
        self._place(customer, key)
        self._write(now, ADD_CUSTOMER, customer, None, customer)
        return customer

    def restore_relationship(
        self, tenant_id: str, now: datetime.datetime, *, position: int | None = None, before: str | None = None
    ) -> Customer:
        """A customer whose relationship ended accepts a reseller relationship again: it is listed
        again (in the slot it left, unless `position`/`before` say otherwise), its calls answer
        again, and the log gets `add_customer` (the relationship is a new one, as at Microsoft)."""
        former = self._former.get(tenant_id)
        if former is None:
            if tenant_id in self._positions:
                raise ValueError(f"customer {tenant_id} already has a relationship with this partner")
            raise UnknownCustomer(f"partner {self.partner.tenant_id} never had customer {tenant_id}")
        old_key = self._former_keys[tenant_id]
        if position is None and before is None:
            self._slots[self._index(old_key)] = former
            self._positions[tenant_id] = old_key
        else:
            key = self._new_key(position, before)
            self._place(former, key)
        del self._former[tenant_id], self._former_keys[tenant_id]
        self._write(now, ADD_CUSTOMER, former, replace(former, relationship_to_partner="none"), former)
        return former

    def update_billing_profile(self, tenant_id: str, changes: Mapping[str, Any], now: datetime.datetime) -> Customer:
        """Merge `changes` into the billing profile (None removes a field) and bump its etag."""
        old = self._current(tenant_id)
        profile = merge_billing_profile(old.billing_profile, changes)
        new = replace(old, billing_profile=profile, billing_etag=new_etag(self._generator.rng))
        self._slots[self._index(self._positions[tenant_id])] = new
        self._write(now, UPDATE_BILLING_PROFILE, new, _audited_profile(old), _audited_profile(new))
        return new

    def rename(self, tenant_id: str, company_name: str, now: datetime.datetime) -> Customer:
        """The customer's company name changes (company profile and billing profile alike)."""
        old = self._current(tenant_id)
        profile = merge_billing_profile(old.billing_profile, {"companyName": company_name})
        new = replace(
            old, company_name=company_name, billing_profile=profile, billing_etag=new_etag(self._generator.rng)
        )
        self._slots[self._index(self._positions[tenant_id])] = new
        self._write(
            now, UPDATE_COMPANY_NAME, new,
            {"tenantId": tenant_id, "companyName": old.company_name},
            {"tenantId": tenant_id, "companyName": company_name},
        )
        return new

    def set_relationship_kind(self, tenant_id: str, kind: str) -> Customer:
        """The customer's relationshipToPartner becomes `kind` (say reseller to advisor); it stays
        listed and its calls still answer. Partner Center logs no audit record for this."""
        new = replace(self._current(tenant_id), relationship_to_partner=kind)
        self._slots[self._index(self._positions[tenant_id])] = new
        return new

    def set_reseller_state(self, reseller_id: str, state: str) -> Reseller:
        """The indirect reseller's relationship state ("Active", "Inactive", "Terminated", ...)."""
        for index, reseller in enumerate(self.resellers):
            if reseller.tenant_id == reseller_id:
                self.resellers[index] = replace(reseller, state=state)
                return self.resellers[index]
        raise UnknownCustomer(f"{reseller_id} is not an indirect reseller of partner {self.partner.tenant_id}")

    def remove_relationship(self, tenant_id: str, now: datetime.datetime) -> None:
        """The relationship ends: the customer leaves the list and per-customer calls answer 403."""
        old = self._current(tenant_id)
        key = self._positions.pop(tenant_id)
        self._slots[self._index(key)] = None
        self._former[tenant_id] = old
        self._former_keys[tenant_id] = key
        self._write(now, REMOVE_RELATIONSHIP, old, old, replace(old, relationship_to_partner="none"))

    # --- internals -----------------------------------------------------------------------------

    def _seed(self, count: int, now: datetime.datetime, others: list[Customer]) -> None:
        reseller_ids = [reseller.tenant_id for reseller in self.resellers]
        rng = self._generator.rng
        estate = self._generator.customers(count, reseller_ids)
        # Customers of other relationship kinds come from their own generator and are spread
        # through the list, so the reseller customers are exactly those of an estate without them.
        for other in others:
            estate.insert(hash_position(other.tenant_id, len(estate) + 1), other)
        step = SEEDED_HISTORY / max(len(estate), 1)
        start = now - SEEDED_HISTORY
        for index, customer in enumerate(estate):
            self._append(customer)
            # Spread over the last days in list order, so the log stays sorted by date.
            self._write(start + step * (index + rng.random()), ADD_CUSTOMER, customer, None, customer)

    def _append(self, customer: Customer) -> None:
        key = self._keys[-1] // 1 + 1 if self._keys else 0
        self._positions[customer.tenant_id] = key
        self._keys.append(key)
        self._slots.append(customer)

    def _index(self, key: int | Fraction) -> int:
        return bisect.bisect_left(self._keys, key)

    def _new_key(self, position: int | None, before: str | None) -> int | Fraction | None:
        """The sort key for a new slot at list position `position` or just before customer
        `before`; None for the end of the list. ValueError for a position that does not exist."""
        if position is not None and before is not None:
            raise ValueError("give a position or a customer to insert before, not both")
        if before is not None:
            if before not in self._positions:
                raise UnknownCustomer(f"partner {self.partner.tenant_id} has no customer {before}")
            index = self._index(self._positions[before])
        elif position is not None:
            if isinstance(position, bool) or not isinstance(position, int) or position < 0:
                raise ValueError(f"position must be a list position (0 or more), not {position!r}")
            listed = [index for index, customer in enumerate(self._slots) if customer is not None]
            if position >= len(listed):
                return None
            index = listed[position]
        else:
            return None
        below = self._keys[index - 1] if index > 0 else self._keys[index] - 1
        return Fraction(below + self._keys[index], 2)

    def _place(self, customer: Customer, key: int | Fraction | None) -> None:
        if key is None:
            self._append(customer)
            return
        index = self._index(key)
        self._keys.insert(index, key)
        self._slots.insert(index, customer)
        self._positions[customer.tenant_id] = key

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


def hash_position(tenant_id: str, size: int) -> int:
    """A deterministic position in 0..size-1 drawn from a tenant id (itself seeded)."""
    return int(tenant_id.replace("-", "")[:8], 16) % size


def _audited_profile(customer: Customer) -> dict[str, Any]:
    attributes = {"etag": customer.billing_etag, "objectType": "CustomerBillingProfile"}
    return {**customer.billing_profile, "attributes": attributes}
