"""The security properties of infra/, read from the parsed Bicep trees (not from the text)."""

from __future__ import annotations

import json
import re

import pytest

from tests.deploy import infra
from tests.deploy.infra import INFRA, MAIN, dotted, module_file, module_params, the_resource, tree

STORAGE = INFRA / "app" / "storage.bicep"
KEY_VAULT = INFRA / "app" / "keyvault.bicep"
MONITORING = INFRA / "app" / "monitoring.bicep"
PLAN = INFRA / "app" / "plan.bicep"
FUNCTION = INFRA / "app" / "function.bicep"

SECRET_VALUE = re.compile(r"AccountKey=|SharedAccessSignature=|InstrumentationKey=|sig=", re.IGNORECASE)
AZD_REFERENCE = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(=[^}]*)?\}$")


@pytest.mark.parametrize("path", infra.bicep_files(), ids=lambda path: str(path.relative_to(INFRA)))
def test_every_bicep_file_parses(path):
    assert tree(path)


def test_main_composes_every_module_from_local_files():
    used = {module_file(name) for name in tree(MAIN)["modules"]}
    assert all(path.is_file() for path in used)
    unused = set(infra.bicep_files()) - used - {MAIN}
    assert not unused, f"modules main.bicep does not use: {sorted(str(p) for p in unused)}"


def test_storage_allows_no_shared_key_no_public_blob_and_only_tls_1_2():
    properties = the_resource(STORAGE, "Microsoft.Storage/storageAccounts")["properties"]
    assert properties["allowSharedKeyAccess"] is False
    assert properties["allowBlobPublicAccess"] is False
    assert properties["minimumTlsVersion"] == "TLS1_2"
    assert properties["supportsHttpsTrafficOnly"] is True
    container = the_resource(STORAGE, "Microsoft.Storage/storageAccounts/blobServices/containers")
    assert container["properties"]["publicAccess"] == "None"


def test_key_vault_is_in_rbac_mode_with_soft_delete_and_purge_protection():
    properties = the_resource(KEY_VAULT, "Microsoft.KeyVault/vaults")["properties"]
    assert properties["enableRbacAuthorization"] is True
    assert properties["enableSoftDelete"] is True
    assert properties["enablePurgeProtection"] is True


def test_key_vault_secrets_come_from_secure_parameters():
    secure = infra.secure_parameters(KEY_VAULT)
    secrets = infra.resources(KEY_VAULT, "Microsoft.KeyVault/vaults/secrets")
    assert len(secrets) == 2
    for secret in secrets.values():
        assert secret["properties"]["value"] in secure
        assert secret["properties"]["contentType"]
    # main.bicep hands its own secure parameters to the vault module, and only to it.
    main_secure = infra.secure_parameters(MAIN)
    assert main_secure == {"partnerCenterClientSecret", "syncTokenEncryptionKey"}
    for name in tree(MAIN)["modules"]:
        passed = set(map(str, module_params(name).values()))
        if name == "keyVault":
            assert main_secure <= passed
        else:
            assert not main_secure & passed, f"module {name} is given a secret"


def test_application_insights_and_log_analytics_have_local_auth_off():
    insights = the_resource(MONITORING, "Microsoft.Insights/components")["properties"]
    assert insights["DisableLocalAuth"] is True
    assert dotted(insights["WorkspaceResourceId"]) == "workspace.id"
    workspace = the_resource(MONITORING, "Microsoft.OperationalInsights/workspaces")["properties"]
    assert workspace["features"]["disableLocalAuth"] is True


def test_the_plan_is_flex_consumption():
    plan = the_resource(PLAN, "Microsoft.Web/serverfarms")
    assert plan["sku"] == {"tier": "FlexConsumption", "name": "FC1"}
    assert plan["properties"]["reserved"] is True  # Linux


def test_the_function_app_runs_python_3_11_as_the_user_assigned_identity():
    site = the_resource(FUNCTION, "Microsoft.Web/sites")
    assert site["kind"] == "functionapp,linux"
    assert site["identity"]["type"] == "UserAssigned"
    assert list(site["identity"]["userAssignedIdentities"]) == ["'${identityId}'"]
    properties = site["properties"]
    assert properties["keyVaultReferenceIdentity"] == "identityId"
    assert properties["httpsOnly"] is True
    assert properties["siteConfig"]["ftpsState"] == "Disabled"
    config = properties["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"] == {"type": "UserAssignedIdentity", "userAssignedIdentityResourceId": "identityId"}
    assert config["scaleAndConcurrency"] == {"maximumInstanceCount": "maximumInstanceCount",
                                             "instanceMemoryMB": "instanceMemoryMB"}
    assert {"maximumInstanceCount", "instanceMemoryMB"} <= set(tree(FUNCTION)["parameters"])


def test_main_passes_the_identity_and_its_scale_parameters_to_the_function_app():
    params = module_params("functionApp")
    assert dotted(params["identityId"]) == "identity.outputs.id"
    assert params["maximumInstanceCount"] == "maximumInstanceCount"
    assert params["instanceMemoryMB"] == "instanceMemoryMB"
    assert {"maximumInstanceCount", "instanceMemoryMB", "actionGroupId"} <= set(tree(MAIN)["parameters"])


def test_basic_auth_publishing_is_off():
    policies = infra.resources(FUNCTION, "Microsoft.Web/sites/basicPublishingCredentialsPolicies")
    assert {policy["name"] for policy in policies.values()} == {"ftp", "scm"}
    assert all(policy["properties"]["allow"] is False for policy in policies.values())


def test_storage_and_telemetry_settings_authenticate_with_the_identity():
    settings = infra.app_settings()
    for connection in ("AzureWebJobsStorage", "SYNC_STORAGE"):
        assert settings[f"{connection}__credential"] == "managedidentity"
        assert dotted(settings[f"{connection}__clientId"]) == "identity.outputs.clientId"
    assert dotted(settings["AzureWebJobsStorage__accountName"]) == "storage.outputs.name"
    assert dotted(settings["SYNC_STORAGE__tableServiceUri"]) == "storage.outputs.tableEndpoint"
    assert dotted(settings["SYNC_STORAGE__queueServiceUri"]) == "storage.outputs.queueEndpoint"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == "ClientId=${identity.outputs.clientId};Authorization=AAD"


def test_no_app_setting_holds_a_connection_string_key_or_secret():
    settings = infra.app_settings()
    assert "AzureWebJobsStorage" not in settings and "SYNC_STORAGE_CONNECTION" not in settings
    secure = infra.secure_parameters(MAIN)
    for name, value in settings.items():
        text = json.dumps(value)
        assert not SECRET_VALUE.search(text), f"{name} looks like it holds a key"
        assert not any(f'"{param}"' in text or "{" + param + "}" in text for param in secure), f"{name} holds a secret"
    for name in ("PARTNER_CENTER_CLIENT_SECRET", "SYNC_TOKEN_ENCRYPTION_KEY"):
        assert re.fullmatch(r"@Microsoft\.KeyVault\(SecretUri=\$\{keyVault\.outputs\.\w+\}\)", settings[name]), name


def test_account_secrets_are_key_vault_references_by_name():
    references = infra.resolve(FUNCTION, "secretReferenceSettings")
    assert references["loop_type"]["detail"]["array_name"] == "keyVaultSecretSettings"
    value = references["config"]["value"]
    assert value.startswith("@Microsoft.KeyVault(SecretUri=${keyVaultUri}secrets/")


def test_the_parameters_file_holds_azd_references_only():
    def leaves(value):
        if isinstance(value, dict):
            for item in value.values():
                yield from leaves(item)
        else:
            yield value

    for name, value in infra.parameter_values().items():
        for leaf in leaves(value):
            assert isinstance(leaf, str) and AZD_REFERENCE.match(leaf), f"{name}: {leaf!r} is not an azd ${{VAR}} reference"
