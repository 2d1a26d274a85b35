"""Contact mapping: a Partner Center billing profile becomes the organization's Primary Contact (docs/storage.md).

Pure functions, no I/O. The billing profile is the customer's *Billing Contact* in Partner Center;
on the Platform it is the organization's *Primary Contact*, and the organization's *Billing
Contact* is always a copy of the Primary one. Values are trimmed of surrounding whitespace and
otherwise kept exactly as Partner Center sent them; a missing value is recorded, never invented.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping

SOURCE = "MicrosoftPartnerCenter"

# The validation contract's spelling of the contact fields (docs/validation.md), in contract order.
CONTACT_FIELDS = (
    "firstName",
    "lastName",
    "email",
    "phone",
    "addressLine1",
    "addressLine2",
    "addressLine3",
    "city",
    "state",
    "postalCode",
    "country",
)

# The fields whose absence flags an organization incomplete, in MissingContactFields order.
# Address lines 2-3 and state are optional and never listed.
REQUIRED_FIELDS = ("firstName", "lastName", "email", "phone", "addressLine1", "city", "postalCode", "country")

# Contact field -> (Contact attribute, Table property suffix).
_CONTACT_COLUMNS = {
    "firstName": ("first_name", "FirstName"),
    "lastName": ("last_name", "LastName"),
    "email": ("email", "Email"),
    "phone": ("phone", "Phone"),
    "addressLine1": ("address_line1", "AddressLine1"),
    "addressLine2": ("address_line2", "AddressLine2"),
    "addressLine3": ("address_line3", "AddressLine3"),
    "city": ("city", "City"),
    "state": ("state", "State"),
    "postalCode": ("postal_code", "PostalCode"),
    "country": ("country", "Country"),
}

# Every property the sync maps into an Organizations row, in contract order (docs/storage.md). Status,
# FirstSyncedAt and LastChangedAt belong to the store: they are not content.
CONTENT_FIELDS = (
    ("CompanyName", "Domain", "RelationshipToPartner", "IndirectResellerId", "Source")
    + tuple("Primary" + suffix for _, suffix in _CONTACT_COLUMNS.values())
    + ("PrimaryCulture", "PrimaryLanguage")
    + tuple("Billing" + suffix for _, suffix in _CONTACT_COLUMNS.values())
    + ("MissingContactFields",)
)

# Table Storage limits: a string property holds at most 64 KiB (32K UTF-16 code units), an entity
# at most 1 MiB. The entity budget keeps room for the keys, Status and the two timestamps.
MAX_STRING_CODE_UNITS = 32 * 1024
MAX_ENTITY_BYTES = 1024 * 1024
_RESERVED_ENTITY_BYTES = 4 * 1024


class MalformedBillingProfile(ValueError):
    """A billing profile field has the wrong type (or the profile is not an object)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"billing profile field {field!r} {reason}")
        self.field = field
        self.reason = reason


class ValueTooLarge(ValueError):
    """A value does not fit Table Storage's limits; the sync records an error for that customer."""

    def __init__(self, field: str, size: int, limit: int) -> None:
        super().__init__(f"{field} is too large for Table Storage ({size} > {limit})")
        self.field = field
        self.size = size
        self.limit = limit


@dataclass(frozen=True)
class Contact:
    """A contact as the Platform stores it; "" where Partner Center gave nothing."""

    first_name: str = ""
    last_name: str = ""
    email: str = ""
    phone: str = ""
    address_line1: str = ""
    address_line2: str = ""
    address_line3: str = ""
    city: str = ""
    state: str = ""
    postal_code: str = ""
    country: str = ""
    culture: str = ""
    language: str = ""

    def value(self, contact_field: str) -> str:
        """The value of a contact field named as in the validation contract (e.g. ``postalCode``)."""
        return getattr(self, _CONTACT_COLUMNS[contact_field][0])


@dataclass(frozen=True)
class CustomerRecord:
    """The customer facts the organization carries besides its contact (from the customer list)."""

    tenant_id: str
    company_name: str
    domain: str
    relationship_to_partner: str
    indirect_reseller_id: str = ""


def primary_contact_from_billing_profile(profile: Mapping) -> Contact:
    """Map a Partner Center billing profile to the organization's Primary Contact.

    First and last name and email come from the profile's top level, falling back to
    ``defaultAddress.firstName`` / ``lastName`` / ``emailAddress`` when the top-level value is
    absent or blank. Phone, address lines, city, state, postal code and country come from
    ``defaultAddress``; culture and language from the top level.

    Raises :class:`MalformedBillingProfile` when the profile or its ``defaultAddress`` is not an
    object, or a mapped field is not a string (null included: Partner Center omits missing fields).
    """
    if not isinstance(profile, Mapping):
        raise MalformedBillingProfile("billingProfile", "must be an object")
    address = profile.get("defaultAddress", {})
    if not isinstance(address, Mapping):
        raise MalformedBillingProfile("defaultAddress", "must be an object")

    def top(name: str) -> str:
        return _text(profile, name, name)

    def addr(name: str) -> str:
        return _text(address, name, f"defaultAddress.{name}")

    return Contact(
        first_name=top("firstName") or addr("firstName"),
        last_name=top("lastName") or addr("lastName"),
        email=top("email") or addr("emailAddress"),
        phone=addr("phoneNumber"),
        address_line1=addr("addressLine1"),
        address_line2=addr("addressLine2"),
        address_line3=addr("addressLine3"),
        city=addr("city"),
        state=addr("state"),
        postal_code=addr("postalCode"),
        country=addr("country"),
        culture=top("culture"),
        language=top("language"),
    )


def missing_contact_fields(contact: Contact) -> tuple[str, ...]:
    """The required contact fields that are blank, in the contract's order."""
    return tuple(name for name in REQUIRED_FIELDS if not contact.value(name))


def organization_fields(customer: CustomerRecord, contact: Contact) -> dict[str, str]:
    """The Organizations row's content properties for a customer and its Primary Contact.

    The Billing properties repeat the Primary ones. Status, FirstSyncedAt, LastChangedAt and the
    keys are the store's to set, so they are not here.
    """
    fields = {
        "CompanyName": customer.company_name,
        "Domain": customer.domain,
        "RelationshipToPartner": customer.relationship_to_partner,
        "IndirectResellerId": customer.indirect_reseller_id or "",
        "Source": SOURCE,
    }
    for contact_field, (_, suffix) in _CONTACT_COLUMNS.items():
        fields["Primary" + suffix] = contact.value(contact_field)
    fields["PrimaryCulture"] = contact.culture
    fields["PrimaryLanguage"] = contact.language
    for contact_field, (_, suffix) in _CONTACT_COLUMNS.items():
        fields["Billing" + suffix] = contact.value(contact_field)
    fields["MissingContactFields"] = ",".join(missing_contact_fields(contact))
    return fields


def check_table_limits(fields: Mapping[str, str]) -> None:
    """Raise :class:`ValueTooLarge` when a value (or the whole row) would not fit Table Storage.

    Checked before writing, so one customer with an oversize value is recorded as a failure
    instead of failing the transaction that carries its neighbours.
    """
    entity_bytes = _RESERVED_ENTITY_BYTES
    largest, largest_bytes = "", -1
    for name, value in fields.items():
        units = len(value.encode("utf-16-le", "surrogatepass")) // 2
        if units > MAX_STRING_CODE_UNITS:
            raise ValueTooLarge(name, units, MAX_STRING_CODE_UNITS)
        value_bytes = 4 + 2 * units
        entity_bytes += 8 + 2 * len(name) + value_bytes
        if value_bytes > largest_bytes:
            largest, largest_bytes = name, value_bytes
    if entity_bytes > MAX_ENTITY_BYTES:
        raise ValueTooLarge(largest, entity_bytes, MAX_ENTITY_BYTES)


def content_hash(fields: Mapping[str, object]) -> str:
    """A stable hash of an organization's content properties (absent counts as "").

    Equal hashes mean nothing to write, so a run can compare against a small snapshot instead of
    whole rows.
    """
    values = [_stored_text(fields.get(name)) for name in CONTENT_FIELDS]
    encoded = json.dumps(values, ensure_ascii=True, separators=(",", ":")).encode("ascii")
    return hashlib.blake2b(encoded, digest_size=16).hexdigest()


def changed_fields(old: Mapping[str, object], new: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """The content properties whose value differs, as ``{name: (old, new)}``.

    Comparison is exact: a change of case (an email's, say) is a change, because Partner Center is
    the source of truth and the Platform must show what it shows. A property absent from ``old``
    counts as "".
    """
    changes = {}
    for name in CONTENT_FIELDS:
        if name not in new:
            continue
        before, after = _stored_text(old.get(name)), new[name]
        if before != after:
            changes[name] = (before, after)
    return changes


def _text(source: Mapping, key: str, field: str) -> str:
    value = source.get(key, "")
    if not isinstance(value, str):
        kind = "null" if value is None else type(value).__name__
        raise MalformedBillingProfile(field, f"must be a string, got {kind}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate (from a "\ud800" JSON escape) cannot be stored or sent anywhere.
        raise MalformedBillingProfile(field, "is not valid unicode") from None
    return value.strip()


def _stored_text(value: object) -> str:
    return "" if value is None else value if isinstance(value, str) else str(value)
