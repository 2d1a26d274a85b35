"""Reading the event payload: keys in any case, the customer named by GUID, one key per event."""

from __future__ import annotations

import json

import pytest

from shared.webhooks.events import InvalidEvent, parse_event

TENANT = "1F3C2A9E-5B7D-4E21-9A0C-6D8E4F2B1A37"


def body(**fields) -> bytes:
    event = {"EventName": "reseller-relationship-accepted-by-customer",
             "ResourceUri": f"https://api.partnercenter.microsoft.com/v1/customers/{TENANT}",
             "ResourceName": "customer", "AuditUri": None, "ResourceChangeUtcDate": "2026-11-23T10:00:00.1234567+00:00"}
    event.update(fields)
    return json.dumps({k: v for k, v in event.items() if v is not ...}).encode()


def test_keys_are_read_without_regard_to_case():
    camel = json.dumps({"eventName": "reseller-relationship-accepted-by-customer",
                        "resourceUri": f"/v1/customers/{TENANT}", "resourceName": "customer",
                        "resourceChangeUtcDate": "2026-11-23T10:00:00Z"}).encode()
    assert parse_event(camel).customer_tenant_id == TENANT.lower()


def test_the_same_event_spaced_or_cased_differently_has_the_same_key():
    pascal = json.loads(body())
    camel = {key[0].lower() + key[1:]: value for key, value in pascal.items()}
    assert parse_event(body()).key == parse_event(json.dumps(camel, indent=4).encode()).key


@pytest.mark.parametrize(("fields", "pointer"), [
    ({"ResourceUri": "https://api.partnercenter.microsoft.com/v1/customers/not-a-guid"}, "/ResourceUri"),
    ({"ResourceUri": "https://api.partnercenter.microsoft.com/v1/subscriptions/x"}, "/ResourceUri"),
    ({"ResourceChangeUtcDate": ...}, "/ResourceChangeUtcDate"),
    ({"EventName": 7}, "/EventName"),
    ({"EventName": ""}, "/EventName"),
])
def test_a_relationship_event_without_what_it_needs_is_invalid(fields, pointer):
    with pytest.raises(InvalidEvent) as refused:
        parse_event(body(**fields))
    assert refused.value.pointer == pointer


def test_a_key_given_twice_in_different_case_is_refused():
    with pytest.raises(InvalidEvent):
        parse_event(b'{"EventName": "test-created", "eventName": "reseller-relationship-accepted-by-customer"}')


def test_an_unknown_event_needs_only_its_name():
    event = parse_event(b'{"EventName": "Subscription-Updated"}')
    assert event.event_name == "subscription-updated" and not event.is_relationship_event
