"""Storage connections are read from the settings as Azure Functions reads a ``connection``."""

from __future__ import annotations

import pytest

from shared.app import App
from shared.settings import Settings, SettingsError
from shared.store.connections import ManagedIdentities, binding_storage, resolve, sync_storage
from shared.operations.units import UnitQueue

AZURITE = "UseDevelopmentStorage=true"
TABLES = "https://contosodata.table.core.windows.net"
QUEUES = "https://contosodata.queue.core.windows.net"


def refused(environ: dict, name: str = "SYNC_STORAGE") -> str:
    with pytest.raises(SettingsError) as raised:
        sync_storage(environ) if name == "SYNC_STORAGE" else binding_storage(name, environ)
    return str(raised.value)


def test_the_sync_connection_string_still_works():
    connection = sync_storage(Settings.from_env({"SYNC_STORAGE_CONNECTION": AZURITE, "AzureWebJobsStorage": "other"}).environ)
    assert connection.connection_string == AZURITE and not connection.identity_based


def test_without_sync_settings_the_sync_falls_back_to_the_host_storage():
    assert sync_storage({"AzureWebJobsStorage": AZURITE}).connection_string == AZURITE
    connection = sync_storage({"AzureWebJobsStorage__accountName": "contosodata"})
    assert (connection.name, connection.table_service_uri) == ("AzureWebJobsStorage", TABLES)


def test_identity_based_sync_storage_names_its_services_and_the_user_assigned_identity():
    connection = sync_storage({"SYNC_STORAGE__tableServiceUri": TABLES + "/", "SYNC_STORAGE__queueServiceUri": QUEUES,
                               "SYNC_STORAGE__credential": "managedidentity", "SYNC_STORAGE__clientId": "c1d",
                               "AzureWebJobsStorage": AZURITE})
    assert connection.identity_based and connection.name == "SYNC_STORAGE"
    assert (connection.table_service_uri, connection.queue_service_uri, connection.client_id) == (TABLES, QUEUES, "c1d")


def test_an_account_name_gives_the_public_cloud_service_uris():
    connection = binding_storage("AzureWebJobsStorage", {"AzureWebJobsStorage__accountName": "contosodata",
                                                         "AzureWebJobsStorage__credential": "ManagedIdentity"})
    assert (connection.table_service_uri, connection.queue_service_uri) == (TABLES, QUEUES)
    assert connection.client_id == ""  # the system-assigned identity


def test_setting_names_are_matched_without_regard_to_case_as_app_settings_are():
    assert resolve("SYNC_STORAGE", {"sync_storage__TABLESERVICEURI": TABLES}).table_service_uri == TABLES


def test_empty_settings_count_as_unset_as_in_the_example_file():
    assert sync_storage({"SYNC_STORAGE_CONNECTION": AZURITE, "SYNC_STORAGE__tableServiceUri": "",
                         "SYNC_STORAGE__credential": " "}).connection_string == AZURITE


def test_a_trigger_connection_without_the_prefix_is_also_looked_up_with_it_like_the_host_does():
    assert binding_storage("Storage", {"AzureWebJobsStorage": AZURITE}).connection_string == AZURITE


def test_no_storage_at_all_names_the_settings_to_set():
    message = refused({})
    assert "SYNC_STORAGE_CONNECTION" in message and "SYNC_STORAGE__tableServiceUri" in message


def test_a_connection_string_and_service_uris_together_are_refused():
    message = refused({"SYNC_STORAGE_CONNECTION": AZURITE, "SYNC_STORAGE__tableServiceUri": TABLES})
    assert "SYNC_STORAGE_CONNECTION" in message and "SYNC_STORAGE__tableServiceUri" in message
    message = refused({"AzureWebJobsStorage": AZURITE, "AzureWebJobsStorage__accountName": "contosodata"},
                      "AzureWebJobsStorage")
    assert "AzureWebJobsStorage__accountName" in message


def test_an_account_name_and_service_uris_together_are_refused():
    message = refused({"AzureWebJobsStorage__accountName": "contosodata",
                       "AzureWebJobsStorage__queueServiceUri": QUEUES}, "AzureWebJobsStorage")
    assert "AzureWebJobsStorage__accountName" in message and "AzureWebJobsStorage__queueServiceUri" in message


@pytest.mark.parametrize("credential", ["clientsecret", "azurecli", "managed identity"])
def test_a_credential_other_than_managed_identity_is_refused(credential):
    message = refused({"SYNC_STORAGE__tableServiceUri": TABLES, "SYNC_STORAGE__credential": credential})
    assert "SYNC_STORAGE__credential must be managedidentity" in message


def test_a_client_id_without_the_managed_identity_credential_is_refused():
    message = refused({"SYNC_STORAGE__tableServiceUri": TABLES, "SYNC_STORAGE__clientId": "c1d"})
    assert "SYNC_STORAGE__clientId needs SYNC_STORAGE__credential=managedidentity" in message


def test_a_secret_based_identity_is_refused():
    message = refused({"SYNC_STORAGE__tableServiceUri": TABLES, "SYNC_STORAGE__clientSecret": "s3cret"})
    assert "SYNC_STORAGE__clientSecret is not supported" in message and "s3cret" not in message


def test_a_credential_without_any_service_is_refused():
    message = refused({"SYNC_STORAGE__credential": "managedidentity", "AzureWebJobsStorage": AZURITE})
    assert "SYNC_STORAGE__accountName" in message and "SYNC_STORAGE__tableServiceUri" in message


def test_a_misspelt_property_is_refused_by_name():
    assert "SYNC_STORAGE__tableUri is not a storage connection setting" in refused({"SYNC_STORAGE__tableUri": TABLES})


@pytest.mark.parametrize("uri, problem", [
    ("http://contosodata.table.core.windows.net", "must use https"),
    ("http://127.0.0.1:10002/devstoreaccount1", "bearer tokens need TLS"),
    ("contosodata.table.core.windows.net", "must be an https URI"),
    (TABLES + "?sv=2024&sig=abc", "without query"),
])
def test_a_service_uri_that_cannot_carry_a_token_is_refused(uri, problem):
    message = refused({"SYNC_STORAGE__tableServiceUri": uri})
    assert "SYNC_STORAGE__tableServiceUri" in message and problem in message
    assert "sig=abc" not in message


def test_a_malformed_account_name_is_refused():
    assert "AzureWebJobsStorage__accountName must be" in refused({"AzureWebJobsStorage__accountName": "Contoso_Data"})


def test_a_queue_needed_from_a_tables_only_connection_is_refused_naming_the_setting():
    settings = Settings.from_env({"AzureWebJobsStorage__tableServiceUri": TABLES,
                                  "AzureWebJobsStorage__credential": "managedidentity"})
    with pytest.raises(SettingsError, match="AzureWebJobsStorage__queueServiceUri .*sync-units"):
        App(settings).unit_queue


def test_the_unit_queue_reads_the_trigger_connection_not_the_sync_storage():
    settings = Settings.from_env({"SYNC_STORAGE_CONNECTION": AZURITE})
    with pytest.raises(SettingsError, match="^AzureWebJobsStorage is not set"):
        App(settings).unit_queue


def test_a_storage_problem_does_not_stop_settings_that_need_no_storage():
    settings = Settings.from_env({"SYNC_STORAGE_CONNECTION": AZURITE, "SYNC_STORAGE__tableServiceUri": TABLES,
                                  "PARTNER_CENTER_TENANT_ID": "t", "PARTNER_CENTER_CLIENT_ID": "c"})
    assert [account.id for account in settings.accounts] == ["default"]
    with pytest.raises(SettingsError):
        App(settings).storage


def test_one_credential_per_client_id_per_app():
    identities = App(Settings.from_env({})).identities
    assert identities.get("c1d") is identities.get("c1d")
    assert identities.get("c1d") is not identities.get("other")


def test_the_command_line_prints_a_storage_settings_error_and_exits_2(without_storage_settings, monkeypatch,
                                                                       tmp_path, capsys):
    from shared.cli import main as cli

    monkeypatch.chdir(tmp_path)  # no local.settings.json
    monkeypatch.setenv("SYNC_STORAGE_CONNECTION", AZURITE)
    monkeypatch.setenv("SYNC_STORAGE__tableServiceUri", TABLES)
    assert cli(["status"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: SYNC_STORAGE_CONNECTION holds a connection string and SYNC_STORAGE__tableServiceUri")
    assert "Traceback" not in error


def test_an_http_route_answers_a_storage_settings_error_with_a_problem_naming_the_setting(
        without_storage_settings, monkeypatch):
    from devstack.local.host import call_http
    from tests.functions.conftest import answer, http_request

    monkeypatch.setenv("SYNC_STORAGE__tableServiceUri", TABLES)
    monkeypatch.setenv("SYNC_STORAGE__credential", "workloadidentity")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    response = call_http("sync_status_all", http_request("GET", "ops/status"))
    assert response.status_code == 503
    assert "SYNC_STORAGE__credential must be managedidentity" in answer(response)["detail"]
