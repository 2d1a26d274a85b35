"""infra/ sets only settings someone reads, every setting the app needs, and roles for every storage service it uses."""

from __future__ import annotations

import json
import re

import pytest

from devstack.local.host import function_index
from shared import setting_names
from shared.functions.problems import MAX_BODY_BYTES
from shared.webhooks.events import MAX_EVENT_BYTES
from tests.deploy import infra
from tests.deploy.infra import INFRA, ROOT, dotted, module_params, tree

RBAC = INFRA / "app" / "rbac.bicep"
FUNCTION = INFRA / "app" / "function.bicep"

# Settings the Functions host and App Service read themselves (Microsoft's "App settings reference
# for Azure Functions"): storage and features of the host, Application Insights, platform settings.
HOST_SETTING_PREFIXES = ("AzureWebJobs", "AzureFunctionsJobHost__", "APPLICATIONINSIGHTS_", "FUNCTIONS_",
                         "WEBSITE_", "SCM_", "PYTHON_")

# Built-in role definition ids (rbac.bicep cites where they come from) and the data they open.
ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": ("Storage Blob Data Owner", "Microsoft.Storage/storageAccounts", "blob"),
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": ("Storage Queue Data Contributor", "Microsoft.Storage/storageAccounts", "queue"),
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": ("Storage Table Data Contributor", "Microsoft.Storage/storageAccounts", "table"),
    "4633458b-17de-408a-b874-0445c86b69e6": ("Key Vault Secrets User", "Microsoft.KeyVault/vaults", "secrets"),
    "3913510d-42f4-4e42-8a64-420c390055eb": ("Monitoring Metrics Publisher", "Microsoft.Insights/components", "telemetry"),
}
DEPLOYER_ROLES = {"b86a8fe4-44ce-4948-aee5-eccb2c155cd7"}  # Key Vault Secrets Officer, to set secrets
BINDING_SERVICES = {"queueTrigger": "queue", "queue": "queue", "blobTrigger": "blob", "blob": "blob",
                    "table": "table", "timerTrigger": "blob"}  # timers keep their schedule locks in blobs

# How the code reads settings: env.get("X"), environ.get("X"), env["X"], _int(env, "X", ...).
SETTING_READ = re.compile(r'(?:env|environ)(?:\.get\(|\[|, )"([A-Za-z_][A-Za-z0-9_]*)"')


def is_host_setting(name: str) -> bool:
    return name.startswith(HOST_SETTING_PREFIXES)


def test_every_app_setting_in_infra_is_read_by_the_app_or_the_host():
    unknown = sorted(name for name in infra.app_settings()
                     if not (setting_names.is_app_setting(name) or is_host_setting(name)))
    assert not unknown, f"infra sets settings nobody reads: {unknown}"


@pytest.mark.parametrize("alternatives", setting_names.REQUIRED, ids=lambda alternatives: alternatives[0][0])
def test_every_setting_the_app_requires_is_set(alternatives):
    settings = set(infra.app_settings())
    assert any(set(choice) <= settings for choice in alternatives), f"infra sets none of {alternatives}"


def test_the_schedules_always_have_a_value():
    settings = infra.app_settings()
    for name in ("INCREMENTAL_SYNC_SCHEDULE", "FULL_SYNC_SCHEDULE"):
        operands = settings[name]["operator"]["operands"]
        assert settings[name]["operator"]["type"] == "conditional"
        assert re.fullmatch(r"[0-9*/,-]+( [0-9*/,-]+){5}", operands["true_value"]), name


def test_the_host_refuses_request_bodies_over_what_any_function_takes_before_buffering_them():
    limit = infra.app_settings()["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"]
    assert isinstance(limit, str) and limit.isdigit(), "an app setting is a string of digits"
    # Room for the largest body a function accepts (the ops API's), far below the host's 100 MB default.
    assert max(MAX_EVENT_BYTES, MAX_BODY_BYTES) < int(limit) <= 1024 * 1024


def test_the_code_reads_only_listed_settings():
    read = set()
    for path in (ROOT / "shared").rglob("*.py"):
        read |= set(SETTING_READ.findall(path.read_text()))
    unlisted = sorted(name for name in read if not setting_names.is_app_setting(name))
    assert read and not unlisted, f"read by the code but missing from shared/setting_names.py: {unlisted}"


def test_every_listed_setting_is_in_the_example_and_the_settings_page():
    example = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    settings_page = (ROOT / "docs" / "settings.md").read_text()
    assert not setting_names.APP_SETTINGS - set(example), "local.settings.example.json lacks some"
    assert not {name for name in setting_names.APP_SETTINGS if f"`{name}`" not in settings_page}, \
        "docs/settings.md lacks some"


def role_assignments() -> list[dict]:
    """rbac.bicep's assignments: role id, the resource type it is scoped to, and the principal."""
    rbac = tree(RBAC)
    existing = {name: resource["type"] for name, resource in rbac["resources"].items() if resource["existing"]}
    found = []
    for assignment in infra.resources(RBAC, "Microsoft.Authorization/roleAssignments").values():
        definition = assignment["properties"]["roleDefinitionId"]["function"]
        assert definition["type"] == "subscription_resource_id"
        role = infra.resolve(RBAC, definition["parameters"]["resource_name_1"])
        found.append({"role": role, "scope": existing[assignment["scope"]],
                      "principal": assignment["properties"]["principalId"]})
    return found


def storage_services_the_app_uses() -> set[str]:
    services = set()
    for function in function_index().values():
        for binding in function.get_bindings():
            services.add(BINDING_SERVICES.get(binding.get_dict_repr()["type"], ""))
    settings = infra.app_settings()
    for name in settings:
        match = re.fullmatch(r"(?:SYNC_STORAGE|AzureWebJobsStorage)__(blob|queue|table)ServiceUri", name)
        if match:
            services.add(match.group(1))
    site = infra.the_resource(FUNCTION, "Microsoft.Web/sites")
    if site["properties"]["functionAppConfig"]["deployment"]["storage"]["type"] == "blobContainer":
        services.add("blob")
    return services - {""}


def test_the_identity_has_a_role_for_every_storage_service_the_app_uses():
    needed = storage_services_the_app_uses()
    assert {"blob", "queue", "table"} <= needed  # the deployment, sync-units and the sync's tables
    granted = {ROLES[a["role"]][2] for a in role_assignments()
               if a["principal"] == "identityPrincipalId" and a["scope"] == "Microsoft.Storage/storageAccounts"}
    assert needed <= granted, f"no role for {sorted(needed - granted)}"


def test_the_identity_holds_exactly_the_least_privilege_roles_each_on_its_resource():
    identity = [a for a in role_assignments() if a["principal"] == "identityPrincipalId"]
    assert sorted(a["role"] for a in identity) == sorted(ROLES)
    for assignment in identity:
        assert assignment["scope"] == ROLES[assignment["role"]][1], ROLES[assignment["role"]][0]
    others = [a for a in role_assignments() if a["principal"] != "identityPrincipalId"]
    assert all(a["role"] in DEPLOYER_ROLES and a["scope"] == "Microsoft.KeyVault/vaults" for a in others)


def test_main_grants_the_roles_to_the_app_identity_before_the_app_starts():
    assert dotted(module_params("rbac")["identityPrincipalId"]) == "identity.outputs.principalId"
    assert "rbac" in tree(INFRA / "main.bicep")["modules"]["functionApp"]["config"]["dependsOn"]
