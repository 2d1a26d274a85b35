"""The identity-based storage settings are listed in local.settings.example.json and docs/settings.md."""

from __future__ import annotations

import json
from pathlib import Path

from shared.settings import Settings
from shared.store.connections import HOST_STORAGE, PROPERTIES, SYNC_STORAGE, sync_storage

ROOT = Path(__file__).resolve().parents[3]
# The sync's connection documents what the sync uses; the host's every property the host reads.
DOCUMENTED = {SYNC_STORAGE: ("tableServiceUri", "queueServiceUri", "credential", "clientId"), HOST_STORAGE: PROPERTIES}


def identity_settings() -> set[str]:
    return {f"{name}__{prop}" for name, props in DOCUMENTED.items() for prop in props}


def test_the_example_lists_the_identity_settings_empty_so_the_connection_strings_stay_in_use():
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert identity_settings() <= set(values)
    assert all(values[name] == "" for name in identity_settings())
    assert not sync_storage(Settings.from_env(values).environ).identity_based


def test_the_settings_page_documents_the_identity_settings_and_links_the_storage_page():
    settings_page = (ROOT / "docs" / "settings.md").read_text()
    assert not {name for name in identity_settings() if f"`{name}`" not in settings_page}
    assert "(storage.md)" in settings_page and (ROOT / "docs" / "storage.md").exists()
    assert "(docs/settings.md)" in (ROOT / "README.md").read_text()
