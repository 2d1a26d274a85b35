"""The alerts' and the workbook's KQL use only the names the code emits (shared/telemetry/names.py):
renaming a metric, span or attribute without updating infra/ fails here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pycep import BicepParser

from shared.sync.engine import INCREMENTAL
from shared.telemetry import names

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "infra" / "app"
EMITTED = set(names.METRICS) | set(names.ATTRIBUTES) | set(names.SPANS)
_NAME = re.compile(r"\bpcsync\.[a-z0-9_.]*[a-z0-9_]")


def names_in(query: str) -> set[str]:
    return set(_NAME.findall(query))


def unknown_names(query: str, emitted: set[str] = EMITTED) -> set[str]:
    return names_in(query) - emitted


@pytest.fixture(scope="module")
def alerts() -> dict:
    return BicepParser().parse(file_path=APP / "alerts.bicep")


@pytest.fixture(scope="module")
def alert_queries(alerts) -> dict[str, str]:
    """Rule name -> its KQL, resolved from the variables the rules point at."""
    variables = {name: v["value"] for name, v in alerts["variables"].items()}
    queries = {}
    for rule in variables["rules"]:
        reference = rule["query"]
        if "${" not in reference:
            reference = "${" + reference + "}"
        # Interpolations name variables: queries (strings) or computed values, kept as their name.
        queries[rule["name"]] = re.sub(r"\$\{(\w+)\}", lambda m: variables[m.group(1)]
                                       if isinstance(variables[m.group(1)], str) else m.group(1), reference)
    return queries


def workbook_queries() -> dict[str, str]:
    template = json.loads((APP / "workbook.json").read_text())
    return {item["content"]["title"]: item["content"]["query"] for item in template["items"] if item["type"] == 3}


def test_the_alert_module_takes_the_parameters_the_lead_wires(alerts):
    assert {"location", "tags", "applicationInsightsId", "logAnalyticsWorkspaceId", "actionGroupId",
            "incrementalIntervalMinutes"} <= set(alerts["parameters"])
    rule = alerts["resources"]["alertRules"]
    assert rule["type"] == "Microsoft.Insights/scheduledQueryRules"
    assert rule["config"]["config"]["properties"]["actions"]["actionGroups"] == ["actionGroupId"]


def test_every_alert_the_issue_asks_for_queries_the_name_it_watches(alert_queries):
    expected = {
        "failed-run": {names.RUNS, names.OUTCOME},
        "sync-lag": {names.SYNC_LAG, names.MODE},
        "held-ending": {names.ENDINGS_HELD},
        "quarantines-growing": {names.CUSTOMERS_QUARANTINED},
        "parked-units": {names.UNITS_PARKED},
        "webhook-failing": {names.WEBHOOK_EVENTS_FAILED},
        "telemetry-silent": {names.SYNC_LAG},
        "events-publishing-lag": {names.EVENTS_PUBLISHING_LAG, names.ACCOUNT},
    }
    assert set(alert_queries) == set(expected)
    for rule, wanted in expected.items():
        assert wanted <= names_in(alert_queries[rule]), rule


@pytest.mark.parametrize("source", ["alerts", "workbook"])
def test_every_pcsync_name_in_the_queries_is_one_the_code_emits(source, alert_queries):
    queries = alert_queries if source == "alerts" else workbook_queries()
    assert queries
    for title, query in queries.items():
        # The webhook latency chart joins the receiver's request with the processing log (tested below).
        assert names_in(query) or "webhook latency" in title.lower(), f"{title} queries no pcsync name"
        assert not unknown_names(query), f"{title} uses {sorted(unknown_names(query))}, which nothing emits"


def test_a_renamed_metric_would_be_caught():
    lag_query = next(q for q in workbook_queries().values() if names.SYNC_LAG in q)
    assert unknown_names(lag_query, EMITTED - {names.SYNC_LAG}) == {names.SYNC_LAG}


def test_the_failed_run_alert_names_outcomes_the_run_log_has(alert_queries):
    from shared.store.runs import RunOutcome

    (listed,) = re.findall(r"outcome in \(([^)]*)\)", alert_queries["failed-run"])
    outcomes = {value.strip().strip('"') for value in listed.split(",")}
    assert outcomes and outcomes <= {str(o) for o in RunOutcome}


def test_the_lag_alert_watches_incremental_runs_over_two_intervals(alert_queries, alerts):
    query = alert_queries["sync-lag"]
    assert f'== "{INCREMENTAL}"' in query
    assert query.startswith("let thresholdSeconds = lagThresholdSeconds;") and "> thresholdSeconds" in query
    assert "incrementalIntervalMinutes" in json.dumps(alerts["variables"]["lagThresholdSeconds"])


def test_the_workbook_has_the_charts_operators_need():
    titles = " | ".join(workbook_queries()).lower()
    for chart in ("lag", "budget", "changes per run", "failures and quarantines", "webhook latency"):
        assert chart in titles
    module = BicepParser().parse(file_path=APP / "workbook.bicep")
    resource = module["resources"]["workbook"]
    assert resource["type"] == "Microsoft.Insights/workbooks"
    loaded = resource["config"]["properties"]["serializedData"]["function"]["parameters"]["file_path"]
    assert (APP / loaded).is_file()
    assert {"location", "tags", "applicationInsightsId"} <= set(module["parameters"])


def test_the_webhook_latency_chart_joins_on_what_the_code_emits():
    """Delivery is the receiver's request; arrival is the processing's "synced" log line, one trace."""
    query = next(q for title, q in workbook_queries().items() if "webhook latency" in title.lower())
    route = re.search(r'route="([^"]+)"', (ROOT / "shared/functions/webhooks.py").read_text()).group(1)
    assert route.split("{")[0].rstrip("/") in query
    function = re.search(r'function_name\("([^"]+)"\)', (ROOT / "shared/functions/webhooks.py").read_text()).group(1)
    assert function in query
    processing = (ROOT / "shared/webhooks/processing.py").read_text()
    assert re.search(r'"webhook event [^"]*synced', processing) and '"webhook event"' in query and '"synced"' in query
