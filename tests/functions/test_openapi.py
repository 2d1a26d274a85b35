"""openapi.yaml stays true: every registered HTTP function is described with its route, method and
auth level, nothing else is, and real answers match the documented schemas."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from devstack.local.server import http_routes
from tests.functions.conftest import answer, validate

DOCUMENT = yaml.safe_load((Path(__file__).resolve().parents[2] / "openapi.yaml").read_text(encoding="utf-8"))
METHODS = {"get", "post", "put", "patch", "delete", "head", "options"}


def documented() -> set[tuple[str, str, str, str]]:
    return {
        (path, method.upper(), operation["operationId"], operation["x-auth-level"])
        for path, item in DOCUMENT["paths"].items()
        for method, operation in item.items() if method in METHODS
    }


def registered() -> set[tuple[str, str, str, str]]:
    return {(f"/{route.route}", method, route.function_name, route.auth_level)
            for route in http_routes() for method in route.methods}


def schema(name: str) -> Draft202012Validator:
    # The whole document is the root, so "#/components/..." references resolve inside it.
    return Draft202012Validator({"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]})


def test_the_document_is_openapi_3():
    assert DOCUMENT["openapi"].startswith("3.")
    assert DOCUMENT["servers"][0]["url"].endswith("/api")


def test_every_registered_http_function_is_documented_and_nothing_else():
    assert documented() == registered()


@pytest.mark.parametrize("name", sorted(DOCUMENT["components"]["schemas"]))
def test_every_schema_is_valid_json_schema(name):
    Draft202012Validator.check_schema(DOCUMENT["components"]["schemas"][name])


def test_the_documented_example_edit_is_a_valid_contact_edit(configured):
    example = DOCUMENT["paths"]["/contacts/validate"]["post"]["requestBody"]["content"]["application/json"]["example"]
    schema("ContactEdit").validate(example)
    assert validate(example).status_code == 200


def test_a_denied_decision_matches_its_schema(seed):
    response = validate({"customerTenantId": seed(), "billingContact": {"city": "Paris", "email": "x@y.z"}})
    schema("ContactEditDecision").validate(answer(response))


def test_a_problem_matches_its_schema(configured):
    response = validate({"customerTenantId": "nope", "primaryContact": {"fax": "1"}})
    schema("Problem").validate(answer(response))


def test_the_schema_refuses_what_the_function_refuses(configured):
    body = {"customerTenantId": str(uuid.uuid4()), "primaryContact": {"email": 5}}
    assert not schema("ContactEdit").is_valid(body)
    assert validate(body).status_code == 400


def test_every_operator_route_documents_the_role_it_needs():
    from tests.functions.test_sign_in import ROLES

    documented_roles = {operation["operationId"]: operation.get("x-role")
                        for item in DOCUMENT["paths"].values() for method, operation in item.items() if method in METHODS}
    assert {name: documented_roles[name] for name in ROLES} == ROLES
