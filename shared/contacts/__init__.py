"""Contact policy: how a Partner Center billing profile becomes an organization's contacts."""

from shared.contacts.mapping import (
    CONTACT_FIELDS,
    CONTENT_FIELDS,
    REQUIRED_FIELDS,
    SOURCE,
    Contact,
    CustomerRecord,
    MalformedBillingProfile,
    ValueTooLarge,
    changed_fields,
    check_table_limits,
    content_hash,
    missing_contact_fields,
    organization_fields,
    primary_contact_from_billing_profile,
)

__all__ = [
    "CONTACT_FIELDS",
    "CONTENT_FIELDS",
    "REQUIRED_FIELDS",
    "SOURCE",
    "Contact",
    "CustomerRecord",
    "MalformedBillingProfile",
    "ValueTooLarge",
    "changed_fields",
    "check_table_limits",
    "content_hash",
    "missing_contact_fields",
    "organization_fields",
    "primary_contact_from_billing_profile",
]
