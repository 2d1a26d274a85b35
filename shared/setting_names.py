"""The names of the app settings the product reads: the one list infra/ and the docs are checked against.

Only names live here, no logic: ``shared/settings.py`` (and the few modules that read
``settings.environ``) decide what each one means. ``tests/deploy`` checks that every app setting
``infra/`` sets is one of these or one the Functions host reads, and that every name the code reads
is listed here.
"""

from __future__ import annotations

# Plain settings, read by name.
APP_SETTINGS = frozenset({
    "SYNC_STORAGE_CONNECTION",
    "PARTNER_CENTER_API_URL",
    "PARTNER_CENTER_AUTHORITY_URL",
    "PARTNER_CENTER_ACCOUNT_ID",
    "PARTNER_CENTER_TENANT_ID",
    "PARTNER_CENTER_CLIENT_ID",
    "PARTNER_CENTER_CLIENT_SECRET",
    "PARTNER_CENTER_ACCOUNTS",
    "INCREMENTAL_SYNC_SCHEDULE",
    "FULL_SYNC_SCHEDULE",
    "PARTNER_CENTER_CLOUD",
    "PARTNER_CENTER_RELATIONSHIP_KINDS",
    "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE",
    "PARTNER_CENTER_INTERACTIVE_RESERVE_PERCENT",
    "PARTNER_CENTER_INTERACTIVE_MAX_PERCENT",
    "PARTNER_CENTER_BUDGET_FALLBACK_INSTANCES",
    "PARTNER_CENTER_PAGE_SIZE",
    "SYNC_CONCURRENCY",
    "SYNC_TIME_BUDGET_SECONDS",
    "SYNC_AUDIT_OVERLAP_MINUTES",
    "SYNC_DELETION_GUARD_PERCENT",
    "SYNC_DELETION_GUARD_MINIMUM",
    "SYNC_QUARANTINE_AFTER_FAILURES",
    "SYNC_LEASE_SECONDS",
    "SYNC_NOW_COOLDOWN_SECONDS",
    "SYNC_CUSTOMER_LIMIT_PER_MINUTE",
    "SYNC_TOKEN_ENCRYPTION_KEY",
    "SYNC_DISPATCH",
    "SYNC_HISTORY_RETENTION_DAYS",
    "SYNC_CHANGE_LOG_RETENTION_DAYS",
    "WEBHOOK_CERTIFICATE_HOSTS",
    "WEBHOOK_TRUST_ANCHORS",
    "WEBHOOK_CERTIFICATE_ISSUER",
    "WEBHOOK_CERTIFICATE_PATHS",
    "WEBHOOK_MAX_EVENT_AGE_DAYS",
    # Set by App Service when Authentication (Easy Auth) is on: only then are operators signed in.
    "WEBSITE_AUTH_ENABLED",
    # Telemetry: Application Insights (also read by the Functions worker) or, locally, OTLP.
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    # Read by requests itself: the trust store for a local or test Partner Center.
    "REQUESTS_CA_BUNDLE",
})

# Storage connections by name. Each is a connection string under its own name, or identity-based
# properties under ``NAME__property`` (Azure Functions' convention, docs/storage.md).
STORAGE_CONNECTIONS = frozenset({"AzureWebJobsStorage", "SYNC_STORAGE"})
CONNECTION_PROPERTIES = frozenset({
    "accountName", "blobServiceUri", "queueServiceUri", "tableServiceUri", "credential", "clientId",
})

# The Platform's Event Grid topic (docs/events.md), in the Functions convention for an Event Grid
# connection: ``PLATFORM_EVENTS__topicEndpointUri``, ``__credential``, ``__clientId``, ``__topicName``.
EVENT_CONNECTIONS = frozenset({"PLATFORM_EVENTS"})
EVENT_CONNECTION_PROPERTIES = frozenset({"topicEndpointUri", "credential", "clientId", "topicName"})

# What a deployment must set for the app to run, as alternatives: each entry is a tuple of
# choices, and a choice is the settings that must all be set.
REQUIRED = (
    # The timers' schedules are %...% binding expressions the host resolves at start-up.
    (("INCREMENTAL_SYNC_SCHEDULE",),),
    (("FULL_SYNC_SCHEDULE",),),
    # The host's storage: timer locks and the sync-units queue trigger.
    (("AzureWebJobsStorage",), ("AzureWebJobsStorage__accountName",),
     ("AzureWebJobsStorage__blobServiceUri", "AzureWebJobsStorage__queueServiceUri")),
    # The sync's tables (and its queues when the sync sends units).
    (("SYNC_STORAGE_CONNECTION",), ("SYNC_STORAGE__tableServiceUri", "SYNC_STORAGE__queueServiceUri")),
    # At least one Partner Center account.
    (("PARTNER_CENTER_ACCOUNTS",),
     ("PARTNER_CENTER_TENANT_ID", "PARTNER_CENTER_CLIENT_ID", "PARTNER_CENTER_CLIENT_SECRET")),
)


def is_app_setting(name: str) -> bool:
    """Whether the app reads ``name``: a plain setting or a storage connection's property."""
    if name in APP_SETTINGS or name in STORAGE_CONNECTIONS:
        return True
    connection, _, prop = name.partition("__")
    if connection in EVENT_CONNECTIONS:
        return prop in EVENT_CONNECTION_PROPERTIES
    return connection in STORAGE_CONNECTIONS and prop in CONNECTION_PROPERTIES
