"""Contact-edit validation (the contract in docs/validation.md): may the Platform save this contact edit?

Pure policy, no I/O. The Platform sends the edit it is about to save; the decision compares it
with the stored organization(s):

- ``active`` (synced from Partner Center): the Primary and Billing contacts are managed in
  Partner Center. A primary or billing field that differs from the stored Primary value is
  ``CONTACT_MANAGED_IN_PARTNER_CENTER``; a billing field that differs from the Primary (the
  proposed value when the edit carries one, else the stored one) is ``BILLING_MUST_MATCH_PRIMARY``.
- ``excluded``: an operator took the organization out of sync, so nothing will overwrite its
  contacts and the Platform may edit them; it is still a Microsoft customer, so its Billing
  contact must still match its Primary.
- ``relationship_ended``: the customer left the partner; Partner Center no longer feeds the
  organization and the Platform owns it: not a Microsoft customer of this partner, allowed.
- not stored: not a Microsoft customer, allowed.

Comparison: values are trimmed; email ignores case; an absent field is unchanged; an empty
string is a change to empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from shared.contacts.mapping import CONTACT_FIELDS
from shared.keys import InvalidKey, account_key, tenant_key

MANAGED = "CONTACT_MANAGED_IN_PARTNER_CENTER"
BILLING_MISMATCH = "BILLING_MUST_MATCH_PRIMARY"

PRIMARY = "primaryContact"
BILLING = "billingContact"
EDIT_FIELDS = ("accountId", "customerTenantId", PRIMARY, BILLING)

# Contract field name -> Organizations property suffix (PrimaryPostalCode, BillingPostalCode, ...).
_SUFFIX = {name: name[0].upper() + name[1:] for name in CONTACT_FIELDS}
_LABEL = {
    "firstName": "first name", "lastName": "last name", "email": "email", "phone": "phone",
    "addressLine1": "address line 1", "addressLine2": "address line 2", "addressLine3": "address line 3",
    "city": "city", "state": "state", "postalCode": "postal code", "country": "country",
}
# Statuses whose contacts the sync writes from Partner Center. Anything not listed as released
# below is treated as managed, so an unknown future status fails closed.
_RELEASED = "relationship_ended"
_EXCLUDED = "excluded"


class InvalidContactEdit(ValueError):
    """The body is not a contact edit; ``errors`` lists ``(JSON pointer, what is wrong)``."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{pointer or '/'}: {detail}" for pointer, detail in errors))
        self.errors = errors


@dataclass(frozen=True)
class ContactEdit:
    """The edit the Platform is about to save. A contact is ``None`` when the edit leaves it alone."""

    customer_tenant_id: str
    account_id: str | None = None
    primary: Mapping[str, str] | None = None
    billing: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Violation:
    code: str
    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "field": self.field, "message": self.message}


@dataclass(frozen=True)
class Decision:
    """The answer of the contract: allowed when there is no violation."""

    microsoft_customer: bool
    violations: tuple[Violation, ...] = field(default_factory=tuple)

    @property
    def allowed(self) -> bool:
        return not self.violations

    def as_dict(self) -> dict[str, Any]:
        return {
            "allowed": self.allowed,
            "microsoftCustomer": self.microsoft_customer,
            "violations": [v.as_dict() for v in self.violations],
        }


def parse_contact_edit(document: Any) -> ContactEdit:
    """Read a decoded JSON body as a :class:`ContactEdit`; raises :class:`InvalidContactEdit`.

    Every problem is reported at once, by JSON pointer: a non-object body, unknown members, a
    missing or non-GUID ``customerTenantId``, an ``accountId`` that is not an account id, a
    contact that is not an object, unknown contact fields, values that are not strings. ``null``
    for ``accountId`` or a contact means "not given"; ``null`` for a contact field is refused,
    since it could mean "unchanged" or "cleared" (send ``""`` to clear a field).
    """
    if not isinstance(document, dict):
        raise InvalidContactEdit([("", f"the body must be a JSON object, got {_kind(document)}")])
    errors: list[tuple[str, str]] = []
    for name in document:
        if name not in EDIT_FIELDS:
            errors.append((_pointer(name), f"unknown member {name!r}; expected {', '.join(EDIT_FIELDS)}"))
    tenant = document.get("customerTenantId")
    tenant_id = ""
    if "customerTenantId" not in document:
        errors.append(("/customerTenantId", "is required"))
    else:
        try:
            tenant_id = tenant_key(tenant)
        except InvalidKey:
            errors.append(("/customerTenantId", f"must be a GUID string, got {_shown(tenant)}"))
    account = document.get("accountId")
    if account is not None:
        try:
            account_key(account)
        except InvalidKey:
            errors.append(("/accountId", f"must be 1-64 letters, digits, '-' or '_', got {_shown(account)}"))
    contacts = {which: _contact(document.get(which), which, errors) for which in (PRIMARY, BILLING)}
    if errors:
        raise InvalidContactEdit(errors)
    return ContactEdit(tenant_id, account, contacts[PRIMARY], contacts[BILLING])


def decide(edit: ContactEdit, organizations: Iterable[Mapping[str, Any]]) -> Decision:
    """The decision for ``edit`` given the stored organizations of its customer (one per account).

    With several accounts (the edit names none), the customer is a Microsoft customer if any
    account's organization makes it one, and the violations against each are merged.
    """
    microsoft = False
    violations: dict[tuple[str, str], Violation] = {}
    for organization in organizations:
        status = str(organization.get("Status") or "")
        if status == _RELEASED:
            continue
        microsoft = True
        found = _billing_mismatches(edit, organization)
        if status != _EXCLUDED:
            found = _managed_changes(edit, organization) + found
        for violation in found:
            violations.setdefault((violation.code, violation.field), violation)
    return Decision(microsoft, tuple(_in_contract_order(violations.values())))


def same_value(contact_field: str, one: str, other: str) -> bool:
    """The comparison rule: trimmed, and for email regardless of case."""
    one, other = one.strip(), other.strip()
    if contact_field == "email":
        return one.casefold() == other.casefold()
    return one == other


def _managed_changes(edit: ContactEdit, organization: Mapping[str, Any]) -> list[Violation]:
    violations = []
    for which, contact in ((PRIMARY, edit.primary), (BILLING, edit.billing)):
        for name, value in (contact or {}).items():
            if not same_value(name, value, _stored_primary(organization, name)):
                violations.append(Violation(
                    MANAGED, f"{which}.{name}",
                    f"The {_LABEL[name]} of a Microsoft customer's {_contact_label(which)} contact is managed in "
                    "Microsoft Partner Center: change the customer's billing profile there; the Platform "
                    "updates within minutes.",
                ))
    return violations


def _billing_mismatches(edit: ContactEdit, organization: Mapping[str, Any]) -> list[Violation]:
    violations = []
    for name, value in (edit.billing or {}).items():
        proposed = (edit.primary or {}).get(name)
        primary = proposed if proposed is not None else _stored_primary(organization, name)
        if not same_value(name, value, primary):
            violations.append(Violation(
                BILLING_MISMATCH, f"{BILLING}.{name}",
                f"A Microsoft customer's Billing contact is always its Primary contact: set the billing "
                f"{_LABEL[name]} to the primary {_LABEL[name]}, or leave it out of the edit.",
            ))
    return violations


def _stored_primary(organization: Mapping[str, Any], name: str) -> str:
    value = organization.get("Primary" + _SUFFIX[name])
    return value if isinstance(value, str) else ""


def _in_contract_order(violations: Iterable[Violation]) -> list[Violation]:
    order = {name: index for index, name in enumerate(CONTACT_FIELDS)}

    def key(violation: Violation) -> tuple:
        which, name = violation.field.split(".", 1)
        return (which != PRIMARY, order[name], violation.code != MANAGED)

    return sorted(violations, key=key)


def _contact(value: Any, which: str, errors: list[tuple[str, str]]) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        errors.append((f"/{which}", f"must be an object, got {_kind(value)}"))
        return None
    contact = {}
    for name, item in value.items():
        if name not in _SUFFIX:
            errors.append((f"/{which}{_pointer(name)}", f"unknown contact field {name!r}; expected {', '.join(CONTACT_FIELDS)}"))
        elif not isinstance(item, str):
            errors.append((f"/{which}/{name}", f"must be a string, got {_kind(item)}"))
        else:
            contact[name] = item
    return contact


def _contact_label(which: str) -> str:
    return "Primary" if which == PRIMARY else "Billing"


def _pointer(name: str) -> str:
    return "/" + name.replace("~", "~0").replace("/", "~1")


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return repr(value if len(value) <= 60 else value[:60] + "…")
    return _kind(value)
