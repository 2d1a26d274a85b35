"""The unit message: strict parsing, and the dispatch setting (documented like every other setting)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from shared.host_config import queue_options
from shared.settings import Settings, SettingsError
from shared.operations.units import (DISPATCH_INLINE, DISPATCH_QUEUE, UNIT_QUEUE_CONNECTION, MalformedUnit, SyncUnit,
                                 dispatch_mode)

ROOT = Path(__file__).resolve().parents[2]
AT = datetime(2025, 1, 1, 2, 0, tzinfo=timezone.utc)


def test_a_unit_survives_the_round_trip_through_its_message():
    unit = SyncUnit("contoso-direct", "full", AT, continues="8204532443152-37d19e72")
    assert SyncUnit.parse(unit.to_json().encode()) == unit
    assert json.loads(unit.to_json()) == {"account": "contoso-direct", "mode": "full",
                                          "requestedAt": "2025-01-01T02:00:00+00:00",
                                          "continues": "8204532443152-37d19e72"}


def test_a_requested_time_with_another_offset_is_read_as_utc():
    unit = SyncUnit.parse(b'{"account": "a1", "mode": "incremental", "requestedAt": "2025-01-01T03:00:00+01:00"}')
    assert unit.requested_at == AT and unit.requested_at.tzinfo == timezone.utc


@pytest.mark.parametrize("body, problem", [
    (b"\xff\xfe", "not UTF-8 JSON"),
    (b"[]", "not a JSON object"),
    (b'{"account": "a1", "mode": "full", "requestedAt": "2025-01-01T02:00:00Z", "secret": "s3cr3t"}',
     "unknown field(s) 'secret'"),
    (b'{"account": "../a1", "mode": "full", "requestedAt": "2025-01-01T02:00:00Z"}', "'account' must be"),
    (b'{"account": 7, "mode": "full", "requestedAt": "2025-01-01T02:00:00Z"}', "'account' must be"),
    (b'{"account": "a1", "mode": "customer", "requestedAt": "2025-01-01T02:00:00Z"}', "'mode' must be"),
    (b'{"account": "a1", "mode": "full"}', "'requestedAt' must be"),
    (b'{"account": "a1", "mode": "full", "requestedAt": "2025-01-01T02:00:00"}', "with a UTC offset"),
    (b'{"account": "a1", "mode": "full", "requestedAt": "2025-01-01T02:00:00Z", "continues": "a b"}',
     "'continues' must be a run id"),
    (b'{"account": "a1", "mode": "full", "requestedAt": "2025-01-01T02:00:00Z", "pad": "' + b"x" * 5000 + b'"}',
     "larger than 4096 bytes"),
])
def test_a_malformed_unit_is_refused_naming_the_problem_not_the_values(body, problem):
    with pytest.raises(MalformedUnit) as refused:
        SyncUnit.parse(body)
    assert problem in str(refused.value)
    assert "s3cr3t" not in str(refused.value) and "../a1" not in str(refused.value)


def test_dispatch_is_inline_unless_set_to_queue():
    assert dispatch_mode(Settings.from_env({})) == DISPATCH_INLINE
    assert dispatch_mode(Settings.from_env({"SYNC_DISPATCH": " Queue "})) == DISPATCH_QUEUE
    with pytest.raises(SettingsError, match="SYNC_DISPATCH must be one of inline, queue"):
        dispatch_mode(Settings.from_env({"SYNC_DISPATCH": "threads"}))


def test_host_json_retries_a_unit_then_parks_it_within_a_incremental_interval():
    options = queue_options()
    assert options.max_dequeue_count == 5 and options.message_encoding == "base64"
    # All retries of a failing unit fit before the next incremental timer (5 minutes) sends another.
    assert (options.max_dequeue_count - 1) * options.visibility_timeout_seconds < 5 * 60


def settings_read_by_the_units() -> set[str]:
    source = (ROOT / "shared" / "operations" / "units.py").read_text()
    return set(re.findall(r'environ\.get\("([A-Za-z][A-Za-z_]+)"', source))


def test_the_units_settings_are_listed_in_the_example_and_documented_in_the_settings_page():
    # The queue's connection is read through the storage factory, by the trigger's connection name.
    names = settings_read_by_the_units() | {UNIT_QUEUE_CONNECTION}
    assert "SYNC_DISPATCH" in names
    values = json.loads((ROOT / "local.settings.example.json").read_text())["Values"]
    assert not names - set(values), f"local.settings.example.json lacks {sorted(names - set(values))}"
    settings_page = (ROOT / "docs" / "settings.md").read_text()
    missing = {name for name in names if f"`{name}`" not in settings_page}
    assert not missing, f"docs/settings.md lacks {sorted(missing)}"
