"""infra/app/auth.bicep: App Service Authentication for the operators, read offline
(docs/deploy.md#operators-sign-in)."""

from __future__ import annotations

from tests.deploy.infra import INFRA, MAIN, module_file, module_params, the_resource, tree

AUTH = INFRA / "app" / "auth.bicep"


def settings() -> dict:
    resource = the_resource(AUTH, "Microsoft.Web/sites/config")
    assert resource["name"] == "authsettingsV2"
    return resource["properties"]


def test_main_configures_sign_in_with_the_operators_app_registration():
    assert module_file("auth") == AUTH
    assert module_params("auth")["clientId"] == "operatorsAppClientId"
    assert "operatorsAppClientId" in tree(MAIN)["parameters"]


def test_entra_id_signs_in_and_unauthenticated_requests_reach_the_app():
    """The webhook (signature), validation (function key) and a browser about to be sent to sign in
    must reach their functions; the app answers every other unsigned operator request 401."""
    properties = settings()
    assert properties["platform"]["enabled"] is True
    assert properties["globalValidation"] == {"requireAuthentication": False,
                                              "unauthenticatedClientAction": "AllowAnonymous"}
    assert properties["identityProviders"]["azureActiveDirectory"]["enabled"] is True
    assert properties["httpSettings"]["requireHttps"] is True


def test_the_token_store_is_off_and_no_client_secret_is_configured():
    properties = settings()
    assert properties["login"]["tokenStore"]["enabled"] is False
    assert "clientSecretSettingName" not in properties["identityProviders"]["azureActiveDirectory"]["registration"]
