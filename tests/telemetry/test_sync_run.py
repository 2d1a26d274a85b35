"""A real sync run (run_accounts against Azurite and the simulator) exports the run span, a span
per Partner Center call and per table transaction, the run's metrics, and structured logs."""

from __future__ import annotations

import uuid

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from shared.app import App
from shared import app
from shared.partner_center import AppTokenProvider
from shared.settings import Settings
from shared.store import TableNames
from shared.sync.stores import SyncStores
from shared.telemetry import names, read_account, unwatch_state, watch_state


@pytest.fixture
def account(simulator, storage_connection, table_prefix, monkeypatch):
    """A single-account setup for the simulator's partner, with its own tables."""
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_path)
    account_id = "tele-" + uuid.uuid4().hex[:8]
    settings = Settings.from_env({
        "SYNC_STORAGE_CONNECTION": storage_connection,
        "PARTNER_CENTER_API_URL": simulator.url,
        "PARTNER_CENTER_AUTHORITY_URL": simulator.url,
        "PARTNER_CENTER_ACCOUNT_ID": account_id,
        "PARTNER_CENTER_TENANT_ID": simulator.partner_tenant_id,
        "PARTNER_CENTER_CLIENT_ID": simulator.client_id,
        "PARTNER_CENTER_CLIENT_SECRET": simulator.client_secret,
        "PARTNER_CENTER_PAGE_SIZE": "10",
        "SYNC_CONCURRENCY": "4",
        "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": "6000",
    })
    stores = SyncStores.open(storage_connection, TableNames().with_prefix(table_prefix))
    app.use(None)
    yield account_id, settings, stores
    stores.tables.delete_all()
    app.use(None)


def only(items):
    assert len(items) == 1, items
    return items[0]


def points_for(points, account_id, **attributes):
    wanted = {names.ACCOUNT: account_id, **attributes}
    return [p for p in points if all(p.attributes.get(k) == v for k, v in wanted.items())]


def test_a_full_run_is_one_span_with_the_runs_figures(otel, account):
    account_id, settings, stores = account
    result = only(App(settings, stores=stores).run_accounts("full"))
    run = only(otel.spans(names.SPAN_RUN))
    attributes = run.attributes
    assert attributes[names.ACCOUNT] == account_id and attributes[names.MODE] == "full"
    assert attributes[names.RUN_ID] == result.run_id and attributes[names.OUTCOME] == "succeeded"
    assert attributes[names.COUNT_ATTRIBUTES["created"]] == result.counts.created == 25
    assert attributes[names.API_CALLS] == result.api_calls and attributes[names.THROTTLED_CALLS] == 0
    assert attributes[names.CORRELATION_ID]
    assert run.status.status_code != StatusCode.ERROR


def test_every_partner_center_call_is_a_client_span_in_the_runs_trace_with_its_ids(otel, account):
    account_id, settings, stores = account
    result = only(App(settings, stores=stores).run_accounts("full"))
    run = only(otel.spans(names.SPAN_RUN))
    calls = [s for s in otel.spans() if s.kind == SpanKind.CLIENT and names.REQUEST_ID in (s.attributes or {})]
    # One span per call the run counted, billing profiles fetched on worker threads included.
    assert len(calls) == result.api_calls
    assert {s.context.trace_id for s in calls} == {run.context.trace_id}
    assert {s.attributes[names.CORRELATION_ID] for s in calls} == {run.attributes[names.CORRELATION_ID]}
    assert len({s.attributes[names.REQUEST_ID] for s in calls}) == len(calls)
    assert {s.attributes["http.response.status_code"] for s in calls} == {200}
    assert {s.attributes[names.HTTP_STATUS] for s in calls} == {200}
    assert {s.attributes[names.ACCOUNT] for s in calls} == {account_id}


def test_each_table_transaction_is_an_azure_sdk_span_in_the_runs_trace(otel, account):
    _, settings, stores = account
    result = only(App(settings, stores=stores).run_accounts("full"))
    run = only(otel.spans(names.SPAN_RUN))
    transactions = [s for s in otel.spans() if s.name.endswith("submit_transaction")]
    # The organizations' batches (25 customers in pages of 10), plus the change log's.
    assert len(transactions) >= result.transactions >= 3
    assert {s.context.trace_id for s in transactions} == {run.context.trace_id}


def test_a_table_operation_is_one_span_carrying_its_http_status_and_storage_request_id(otel, account):
    _, settings, stores = account
    only(App(settings, stores=stores).run_accounts("full"))
    spans = otel.spans()
    operations = [s for s in spans if s.name.startswith("TableClient.")]
    transactions = [s for s in operations if s.name.endswith("submit_transaction")]
    assert transactions and {s.attributes["http.response.status_code"] for s in transactions} == {202}
    assert all(s.attributes["az.service_request_id"] for s in transactions)
    # The HTTP attempts are folded into their operation: no span is a child of a table operation.
    operation_ids = {s.context.span_id for s in operations}
    assert not [s for s in spans if s.parent is not None and s.parent.span_id in operation_ids]
    # Nor are storage calls traced a second time by the requests instrumentation.
    storage = [s for s in spans if s.instrumentation_scope.name == "opentelemetry.instrumentation.requests"
               and "devstoreaccount1" in str(s.attributes.get("http.url", ""))]
    assert storage == []


def test_the_tenant_index_rows_of_a_page_are_one_span_not_one_per_row(otel, account):
    account_id, settings, stores = account
    result = only(App(settings, stores=stores).run_accounts("full"))
    run = only(otel.spans(names.SPAN_RUN))
    index = otel.spans(names.SPAN_TENANT_INDEX)
    # 25 new organizations in pages of 10: each page's rows in one span, but the walk's last page
    # is stored in parts as its profiles come in, its last customers (one per fetch in flight, 4
    # here) a part of their own (shared/sync/reconciliation.py).
    assert settings.concurrency == 4
    assert sorted(s.attributes[names.TENANT_INDEX_ROWS] for s in index) == [1, 4, 10, 10]
    assert sum(s.attributes[names.TENANT_INDEX_ROWS] for s in index) == result.counts.created
    assert {s.attributes[names.ACCOUNT] for s in index} == {account_id}
    assert {s.context.trace_id for s in index} == {run.context.trace_id}
    index_ids = {s.context.span_id for s in index}
    assert not [s for s in otel.spans() if s.parent is not None and s.parent.span_id in index_ids]


def test_a_run_records_organization_call_duration_and_budget_metrics(otel, account):
    account_id, settings, stores = account
    result = only(App(settings, stores=stores).run_accounts("full"))
    points = otel.metrics()
    dims = {names.MODE: "full"}
    assert only(points_for(points[names.ORGANIZATIONS_CREATED], account_id, **dims)).value == 25
    assert only(points_for(points[names.PARTNER_CENTER_CALLS], account_id, **dims)).value == result.api_calls
    assert only(points_for(points[names.RUNS], account_id, **dims, **{names.OUTCOME: "succeeded"})).value == 1
    duration = only(points_for(points[names.RUN_DURATION], account_id, **dims))
    assert duration.count == 1 and duration.sum == pytest.approx(
        (result.ended_at - result.started_at).total_seconds())
    budget = only(points_for(points[names.BUDGET_UTILIZATION], account_id, **dims))
    assert 0 < budget.sum <= 1
    assert names.ORGANIZATIONS_ENDED not in points or not points_for(points[names.ORGANIZATIONS_ENDED], account_id)


def test_logs_inside_a_run_carry_account_run_and_correlation_ids(otel, account):
    account_id, settings, stores = account
    result = only(App(settings, stores=stores).run_accounts("full"))
    run = only(otel.spans(names.SPAN_RUN))
    summary = [r for r in otel.logs() if r.attributes and r.attributes.get(names.OUTCOME) == "succeeded"]
    record = only(summary)
    assert record.attributes[names.ACCOUNT] == account_id
    assert record.attributes[names.RUN_ID] == result.run_id
    assert record.attributes[names.CORRELATION_ID] == run.attributes[names.CORRELATION_ID]
    assert record.trace_id == run.context.trace_id


def test_the_state_gauges_report_lag_per_mode_quarantines_and_held_endings(otel, account):
    account_id, settings, stores = account
    App(settings, stores=stores).run_accounts("full")
    state = watch_state(stores, [account_id])
    otel.spans_exporter.clear()
    try:
        points = otel.metrics()
    finally:
        unwatch_state(state)
    assert otel.spans() == []  # the gauges' own table reads are not traced
    lag = only(points_for(points[names.SYNC_LAG], account_id))
    assert lag.attributes[names.MODE] == "full" and 0 <= lag.value < 60
    assert only(points_for(points[names.CUSTOMERS_QUARANTINED], account_id)).value == 0
    assert only(points_for(points[names.ENDINGS_HELD], account_id)).value == 0
    reading = read_account(stores, account_id)
    assert set(reading.lag_seconds) == {"full"}  # no incremental run yet


def test_an_account_whose_credentials_fail_exports_a_failed_run(otel, account, simulator):
    account_id, settings, stores = account
    broken = Settings.from_env({**settings.environ, "PARTNER_CENTER_CLIENT_SECRET": ""})
    result = only(App(broken, stores=stores).run_accounts("full"))
    run = only(otel.spans(names.SPAN_RUN))
    assert result.outcome == run.attributes[names.OUTCOME] == "failed"
    assert run.status.status_code == StatusCode.ERROR
    assert only(points_for(otel.metrics()[names.RUNS], account_id, **{names.OUTCOME: "failed"})).value == 1


def test_no_secret_or_token_reaches_any_exported_span_metric_or_log(otel, account, simulator, monkeypatch,
                                                                   storage_connection):
    account_id, settings, stores = account
    issued: list[str] = []
    real_token = AppTokenProvider.token

    def observed(self, **kwargs):
        token = real_token(self, **kwargs)
        issued.append(token)
        return token

    monkeypatch.setattr(AppTokenProvider, "token", observed)
    App(settings, stores=stores).run_accounts("full")
    App(settings, stores=stores).run_accounts("incremental")
    exported = otel.everything()
    assert issued and names.SPAN_RUN in exported
    storage_key = dict(part.split("=", 1) for part in storage_connection.split(";") if part)["AccountKey"]
    for secret in {simulator.client_secret, *issued, storage_key}:
        assert secret not in exported
    assert "Bearer" not in exported


def test_quarantines_held_endings_webhook_events_and_parked_units_reach_the_gauges(otel, account):
    account_id, settings, stores = account
    quarantined, failing = str(uuid.uuid4()), str(uuid.uuid4())
    for _ in range(5):  # SYNC_QUARANTINE_AFTER_FAILURES' default
        stores.failures.record_failure(account_id, quarantined, "403 from Partner Center", "run-1")
    stores.failures.record_failure(account_id, failing, "malformed profile", "run-1")
    stores.held.hold(account_id, "run-1", [str(uuid.uuid4()) for _ in range(30)], active_count=40)
    state = watch_state(stores, [account_id],
                        webhook_events=lambda a: {"pending": [{"key": "e1"}, {"key": "e2"}], "failed": [{"key": "e3"}]},
                        parked_units=lambda a: [{"account": a, "problem": "x"}, {"account": "another"}])
    try:
        points = otel.metrics()
    finally:
        unwatch_state(state)
    assert only(points_for(points[names.CUSTOMERS_QUARANTINED], account_id)).value == 1
    assert only(points_for(points[names.ENDINGS_HELD], account_id)).value == 1
    assert only(points_for(points[names.WEBHOOK_EVENTS_PENDING], account_id)).value == 2
    assert only(points_for(points[names.WEBHOOK_EVENTS_FAILED], account_id)).value == 1
    assert only(points_for(points[names.UNITS_PARKED], account_id)).value == 1
    assert not points_for(points.get(names.SYNC_LAG, []), account_id)  # never synced: no lag to report


def test_a_source_that_cannot_be_read_reports_nothing_and_breaks_no_export(otel, account):
    account_id, _, stores = account

    def broken():
        raise RuntimeError("storage is down")

    state = watch_state(broken, [account_id])
    try:
        points = otel.metrics()
    finally:
        unwatch_state(state)
    assert not points_for(points.get(names.ENDINGS_HELD, []), account_id)
