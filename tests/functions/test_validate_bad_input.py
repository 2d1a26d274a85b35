"""Bad input to POST /api/contacts/validate: a 4xx problem+json naming the problem, never a 500."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.contacts.mapping import CONTACT_FIELDS
from shared.functions.problems import MAX_BODY_BYTES
from tests.functions.conftest import answer, is_problem, validate

TENANT = str(uuid.uuid4())


@pytest.mark.parametrize(("body", "kind", "names"), [
    (b"{\"customerTenantId\": ", "invalid-json", "line 1"),
    (b"", "invalid-json", "empty"),
    (b"\xff\xfe{}", "invalid-json", "UTF-8"),
    (b'{"customerTenantId": NaN}', "invalid-json", "NaN"),
    (f'{{"customerTenantId": "{TENANT}", "customerTenantId": "{TENANT}"}}'.encode(), "invalid-json", "twice"),
    (b"[" * 5000 + b"]" * 5000, "invalid-json", "nested"),
    (b'{"customerTenantId": "\\ud800"}', "invalid-json", "surrogate"),
], ids=["truncated", "empty", "not-utf8", "nan", "duplicate-member", "too-deep", "lone-surrogate"])
def test_a_body_that_is_not_strict_json_is_a_400(configured, body, kind, names):
    response = validate(body)
    assert response.status_code == 400 and is_problem(response)
    assert answer(response)["type"].endswith(kind) and names in answer(response)["detail"]


@pytest.mark.parametrize(("body", "pointer", "names"), [
    ([TENANT], "", "JSON object"),
    ("\"just a string\"", "", "JSON object"),
    ({}, "/customerTenantId", "required"),
    ({"customerTenantId": "not-a-guid"}, "/customerTenantId", "GUID"),
    ({"customerTenantId": 42}, "/customerTenantId", "a number"),
    ({"customerTenantId": TENANT, "accountId": 7}, "/accountId", "a number"),
    ({"customerTenantId": TENANT, "accountId": "has spaces"}, "/accountId", "letters"),
    ({"customerTenantId": TENANT, "primaryContact": "Ada"}, "/primaryContact", "object"),
    ({"customerTenantId": TENANT, "billingContact": []}, "/billingContact", "an array"),
    ({"customerTenantId": TENANT, "primaryContact": {"nickname": "A"}}, "/primaryContact/nickname", "unknown contact field"),
    ({"customerTenantId": TENANT, "primaryContact": {"email": None}}, "/primaryContact/email", "null"),
    ({"customerTenantId": TENANT, "billingContact": {"phone": 123}}, "/billingContact/phone", "a number"),
    ({"customerTenantId": TENANT, "billingContact": {"city": ["a"]}}, "/billingContact/city", "an array"),
    ({"customerTenantId": TENANT, "secondaryContact": {}}, "/secondaryContact", "unknown member"),
], ids=["array", "string", "no-tenant", "non-guid-tenant", "number-tenant", "number-account", "bad-account",
        "contact-string", "contact-array", "unknown-contact-field", "null-value", "number-value", "array-value",
        "unknown-member"])
def test_a_body_that_is_not_a_contact_edit_is_a_400_naming_the_member(configured, body, pointer, names):
    response = validate(json.dumps(body) if not isinstance(body, str) else body)
    assert response.status_code == 400 and is_problem(response)
    problem = answer(response)
    assert problem["type"].endswith("invalid-request")
    [error] = [e for e in problem["errors"] if e["pointer"] == pointer]
    assert names in error["detail"]


def test_every_problem_in_a_body_is_reported_at_once(configured):
    body = {"customerTenantId": "x", "primaryContact": {"email": 1, "nick": ""}, "extra": True}
    pointers = {e["pointer"] for e in answer(validate(body))["errors"]}
    assert pointers == {"/customerTenantId", "/primaryContact/email", "/primaryContact/nick", "/extra"}


def test_null_account_and_contacts_mean_not_given(configured):
    response = validate({"customerTenantId": TENANT, "accountId": None, "primaryContact": None})
    assert response.status_code == 200


def test_an_oversize_body_is_a_413(configured):
    body = json.dumps({"customerTenantId": TENANT, "primaryContact": {"city": "x" * MAX_BODY_BYTES}})
    response = validate(body)
    assert response.status_code == 413 and is_problem(response)


def test_a_body_at_the_cap_is_read(configured):
    filler = "x" * (MAX_BODY_BYTES - 100)
    body = json.dumps({"customerTenantId": TENANT, "primaryContact": {"city": filler}})
    assert len(body) <= MAX_BODY_BYTES
    assert validate(body).status_code == 200


# -- fuzz: anything a caller can send ---------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
_contact = st.dictionaries(st.sampled_from(CONTACT_FIELDS) | st.text(max_size=8),
                           st.text(max_size=12) | _json, max_size=5)
_near_valid = st.fixed_dictionaries(
    {"customerTenantId": st.uuids().map(str) | st.text(max_size=40) | _json},
    optional={"accountId": st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True) | _json,
              "primaryContact": _contact | _json, "billingContact": _contact | _json,
              "other": _json},
)
_bodies = (
    st.binary(max_size=300)
    | _json.map(lambda v: json.dumps(v).encode())
    | _near_valid.map(lambda v: json.dumps(v).encode())
    | _near_valid.map(lambda v: json.dumps(v).encode()[:-1])
    | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass"))
)


@settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_no_body_a_caller_sends_produces_a_5xx(configured, body):
    response = validate(body)
    assert response.status_code in (200, 400, 404, 413)
    if response.status_code == 200:
        decision = answer(response)
        assert set(decision) == {"allowed", "microsoftCustomer", "violations"}
    else:
        assert is_problem(response)
