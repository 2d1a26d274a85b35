"""Every name the service emits: spans, attributes and metrics, in one place.

The alerts and the workbook in ``infra/app/`` query these names; tests import them from here, so a
rename here that is not made there fails a test.
"""

PREFIX = "pcsync"

# Meter and tracer (instrumentation scope) name.
SCOPE = "pcsync"

# -- spans -------------------------------------------------------------------------------------
SPAN_RUN = "pcsync.run"
SPAN_PAGE = "pcsync.page"
# A queued webhook event's processing, a child of the request that received it (trace context in the message).
SPAN_WEBHOOK_PROCESS = "pcsync.webhook.process"
# The tenant index rows of one page's new organizations, written one call per row: one span for them all.
SPAN_TENANT_INDEX = "pcsync.tenant_index.record"

# -- attributes (on spans, metric points and log records) ------------------------------------
ACCOUNT = "pcsync.account"
MODE = "pcsync.mode"
RUN_ID = "pcsync.run_id"
OUTCOME = "pcsync.outcome"
CORRELATION_ID = "pcsync.correlation_id"
REQUEST_ID = "pcsync.request_id"
PAGE_NUMBER = "pcsync.page_number"
API_CALLS = "pcsync.api_calls"
THROTTLED_CALLS = "pcsync.throttled_calls"
HTTP_STATUS = "pcsync.http_status"
# Why an authentic webhook event was not stored: stale, unhandled-event, test-event.
REASON = "pcsync.reason"
TENANT_INDEX_ROWS = "pcsync.tenant_index.rows"
# One attribute per run count (the run log, docs/storage.md): pcsync.count.created, pcsync.count.updated, ...
COUNT_PREFIX = "pcsync.count."
COUNT_NAMES = ("created", "updated", "unchanged", "ended", "failed", "held", "excluded_skipped")
COUNT_ATTRIBUTES = {name: COUNT_PREFIX + name for name in COUNT_NAMES}

# -- metrics -----------------------------------------------------------------------------------
ORGANIZATIONS_CREATED = "pcsync.organizations.created"
ORGANIZATIONS_UPDATED = "pcsync.organizations.updated"
ORGANIZATIONS_ENDED = "pcsync.organizations.ended"
ORGANIZATIONS_FAILED = "pcsync.organizations.failed"
RUNS = "pcsync.runs"
RUN_DURATION = "pcsync.run.duration"
PARTNER_CENTER_CALLS = "pcsync.partner_center.calls"
PARTNER_CENTER_THROTTLED = "pcsync.partner_center.throttled_calls"
BUDGET_UTILIZATION = "pcsync.budget.utilization"
SYNC_LAG = "pcsync.sync.lag"
# Organization events (docs/events.md): events the topic accepted, and after each publishing pass the
# age of the oldest stored change still waiting (0 when none waits): the alert's input.
EVENTS_PUBLISHED = "pcsync.events.published"
EVENTS_PUBLISHING_LAG = "pcsync.events.publishing_lag"
WEBHOOK_EVENTS_PENDING = "pcsync.webhook_events.pending"
WEBHOOK_EVENTS_FAILED = "pcsync.webhook_events.failed"
# Authentic webhook events answered 200 and not stored, by account and reason.
WEBHOOK_EVENTS_NOT_STORED = "pcsync.webhook_events.not_stored"
CUSTOMERS_QUARANTINED = "pcsync.customers.quarantined"
ENDINGS_HELD = "pcsync.endings.held"
UNITS_PARKED = "pcsync.units.parked"

# Which run count feeds which organization counter.
ORGANIZATION_COUNTERS = {
    "created": ORGANIZATIONS_CREATED,
    "updated": ORGANIZATIONS_UPDATED,
    "ended": ORGANIZATIONS_ENDED,
    "failed": ORGANIZATIONS_FAILED,
}

METRICS = (
    ORGANIZATIONS_CREATED, ORGANIZATIONS_UPDATED, ORGANIZATIONS_ENDED, ORGANIZATIONS_FAILED, RUNS, RUN_DURATION,
    PARTNER_CENTER_CALLS, PARTNER_CENTER_THROTTLED, BUDGET_UTILIZATION, SYNC_LAG, WEBHOOK_EVENTS_PENDING,
    WEBHOOK_EVENTS_FAILED, WEBHOOK_EVENTS_NOT_STORED, CUSTOMERS_QUARANTINED, ENDINGS_HELD, UNITS_PARKED,
    EVENTS_PUBLISHED, EVENTS_PUBLISHING_LAG,
)
ATTRIBUTES = (
    ACCOUNT, MODE, RUN_ID, OUTCOME, CORRELATION_ID, REQUEST_ID, PAGE_NUMBER, API_CALLS, THROTTLED_CALLS,
    HTTP_STATUS, REASON, TENANT_INDEX_ROWS, *COUNT_ATTRIBUTES.values(),
)
SPANS = (SPAN_RUN, SPAN_PAGE, SPAN_WEBHOOK_PROCESS, SPAN_TENANT_INDEX)
