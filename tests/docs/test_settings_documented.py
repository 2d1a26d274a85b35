"""Every setting the code reads is listed in local.settings.example.json and documented in docs/settings.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def settings_read_by_the_code() -> set[str]:
    source = (ROOT / "shared" / "settings.py").read_text()
    return set(re.findall(r'env(?:\.get\(|, )"([A-Z][A-Za-z_]+)"', source)) - {"AzureWebJobsStorage"}


def test_the_example_lists_every_setting_with_a_value():
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    missing = settings_read_by_the_code() - set(values)
    assert not missing, f"local.settings.example.json lacks {sorted(missing)}"


def test_the_settings_page_documents_every_setting():
    settings_page = (ROOT / "docs" / "settings.md").read_text()
    missing = {name for name in settings_read_by_the_code() if f"`{name}`" not in settings_page}
    assert not missing, f"docs/settings.md lacks {sorted(missing)}"


def test_the_example_values_parse():
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    settings = Settings.from_env(values)
    assert settings.account_errors == ()
    assert [a.id for a in settings.accounts] == ["default"]
    assert settings.api_url == settings.authority_url == "https://127.0.0.1:8443"


def test_a_broken_account_entry_is_reported_and_the_others_kept():
    accounts = json.dumps([
        {"id": "good", "tenantId": "t", "clientId": "c", "clientSecretSetting": "GOOD_SECRET"},
        {"id": "bad", "tenantId": "t", "clientId": "c", "clientSecret": "inline-secret"},
    ])
    settings = Settings.from_env({"PARTNER_CENTER_ACCOUNTS": accounts})
    assert [a.id for a in settings.accounts] == ["good"]
    assert len(settings.account_errors) == 1 and "'bad'" in settings.account_errors[0]
    assert "inline-secret" not in settings.account_errors[0]
