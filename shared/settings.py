"""App settings, read lazily from the environment (docs/settings.md).

Nothing here runs at import time: a missing or broken setting must never stop the Functions
host from indexing the app. ``shared/app.py`` reads them once per worker (:func:`shared.app.current`).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from typing import Mapping

from shared.keys import ACCOUNT_ID
from shared.partner_center.clouds import CLOUDS, PUBLIC, Cloud
from shared.partner_center.models import SYNCABLE_RELATIONSHIP_KINDS, normalize_relationship_kind

DEFAULT_API_URL = PUBLIC.api_url
DEFAULT_AUTHORITY_URL = PUBLIC.authority_url
DEFAULT_RELATIONSHIP_KINDS = frozenset({"reseller"})
DEFAULT_INCREMENTAL_SCHEDULE = "0 */5 * * * *"
DEFAULT_FULL_SCHEDULE = "0 0 2 * * *"
# Partner Center signs webhook events with a certificate it publishes on this host (the
# X-MS-Certificate-Url of Microsoft's documented sample event).
DEFAULT_WEBHOOK_CERTIFICATE_HOSTS = ("3psostorageacct.blob.core.windows.net",)
DEFAULT_WEBHOOK_CERTIFICATE_ISSUER = "Microsoft Corporation"
# ... under this path (Microsoft's sample: /cert/pcnotifications-dispatch.microsoft.com.cer).
DEFAULT_WEBHOOK_CERTIFICATE_PATHS = ("/cert/",)

ACCOUNT_KINDS = ("direct_provider", "indirect_provider")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message names the setting."""


@dataclass(frozen=True)
class Account:
    """One Partner Center account the sync works for.

    Secrets are never held here by value in the multi-account form: ``client_secret_setting``
    names the app setting (often a Key Vault reference) that holds the secret.
    """

    id: str
    kind: str = "direct_provider"
    tenant_id: str = ""
    client_id: str = ""
    client_secret_setting: str = ""
    refresh_token_setting: str = ""

    def client_secret(self, environ: Mapping[str, str] | None = None) -> str:
        """The client secret, read from the named setting at the moment it is needed."""
        env = os.environ if environ is None else environ
        return env.get(self.client_secret_setting, "") if self.client_secret_setting else ""

    @property
    def is_indirect_provider(self) -> bool:
        return self.kind == "indirect_provider"


@dataclass(frozen=True)
class Settings:
    """Typed view of the app settings. Build with :meth:`from_env`."""

    cloud: Cloud = PUBLIC
    api_url: str = DEFAULT_API_URL
    authority_url: str = DEFAULT_AUTHORITY_URL
    relationship_kinds: frozenset[str] = DEFAULT_RELATIONSHIP_KINDS
    accounts: tuple[Account, ...] = ()
    account_errors: tuple[str, ...] = ()
    incremental_schedule: str = DEFAULT_INCREMENTAL_SCHEDULE
    full_schedule: str = DEFAULT_FULL_SCHEDULE
    max_requests_per_minute: int = 450
    interactive_reserve_percent: float = 10.0
    interactive_max_percent: float = 50.0
    budget_fallback_instances: int = 4
    page_size: int = 500
    concurrency: int = 8
    time_budget_seconds: float = 480.0
    audit_overlap_minutes: int = 60
    deletion_guard_percent: float = 10.0
    deletion_guard_minimum: int = 20
    quarantine_after_failures: int = 5
    lease_seconds: int = 60
    sync_now_cooldown_seconds: int = 120
    # On-demand syncs of one customer per account and minute: each costs a few Partner Center calls
    # on the interactive lane, so a loop over tenant ids cannot drain the account's budget.
    sync_customer_limit_per_minute: int = 10
    token_encryption_key: str = field(default="", repr=False)
    webhook_certificate_hosts: tuple[str, ...] = DEFAULT_WEBHOOK_CERTIFICATE_HOSTS
    webhook_trust_anchors: tuple[str, ...] = ()
    webhook_certificate_issuer: str = DEFAULT_WEBHOOK_CERTIFICATE_ISSUER
    webhook_certificate_paths: tuple[str, ...] = DEFAULT_WEBHOOK_CERTIFICATE_PATHS
    webhook_max_event_age_days: int = 7
    # How long the sync's history (run log, finished webhook events, failures, decided holds, walks)
    # and its change log (an audit trail) are kept: the nightly reconciliation prunes what is older.
    history_retention_days: int = 90
    change_log_retention_days: int = 400
    # Set by App Service when Authentication (Easy Auth) is on: only then is the caller's principal
    # trusted, and without it operator routes refuse everyone (shared/functions/principal.py).
    app_service_auth_enabled: bool = False
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        accounts, errors = _accounts_from(env)
        cloud = _cloud(env)
        max_event_age_days = _int(env, "WEBHOOK_MAX_EVENT_AGE_DAYS", 7, minimum=1, maximum=365)
        history_days = _int(env, "SYNC_HISTORY_RETENTION_DAYS", 90, minimum=1, maximum=3650)
        if history_days <= max_event_age_days:
            # A processed event is how a replay is recognized; it must outlive the age replays are accepted at.
            raise SettingsError(f"SYNC_HISTORY_RETENTION_DAYS must be more than WEBHOOK_MAX_EVENT_AGE_DAYS "
                                f"({max_event_age_days}), got {history_days}")
        return cls(
            cloud=cloud,
            # Explicit URLs win over the cloud's (a simulator, a proxy); the token audience stays the cloud's.
            api_url=_url(env, "PARTNER_CENTER_API_URL", cloud.api_url),
            authority_url=_url(env, "PARTNER_CENTER_AUTHORITY_URL", cloud.authority_url),
            relationship_kinds=_relationship_kinds(env),
            accounts=accounts,
            account_errors=errors,
            incremental_schedule=env.get("INCREMENTAL_SYNC_SCHEDULE") or DEFAULT_INCREMENTAL_SCHEDULE,
            full_schedule=env.get("FULL_SYNC_SCHEDULE") or DEFAULT_FULL_SCHEDULE,
            max_requests_per_minute=_int(env, "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE", 450, minimum=1),
            interactive_reserve_percent=_float(env, "PARTNER_CENTER_INTERACTIVE_RESERVE_PERCENT", 10.0,
                                               minimum=0.0, maximum=50.0),
            interactive_max_percent=_float(env, "PARTNER_CENTER_INTERACTIVE_MAX_PERCENT", 50.0,
                                           minimum=1.0, maximum=100.0),
            budget_fallback_instances=_int(env, "PARTNER_CENTER_BUDGET_FALLBACK_INSTANCES", 4, minimum=1,
                                           maximum=1000),
            page_size=_int(env, "PARTNER_CENTER_PAGE_SIZE", 500, minimum=1),
            concurrency=_int(env, "SYNC_CONCURRENCY", 8, minimum=1),
            time_budget_seconds=_float(env, "SYNC_TIME_BUDGET_SECONDS", 480.0, minimum=1.0),
            audit_overlap_minutes=_int(env, "SYNC_AUDIT_OVERLAP_MINUTES", 60, minimum=0),
            deletion_guard_percent=_float(env, "SYNC_DELETION_GUARD_PERCENT", 10.0, minimum=0.0),
            deletion_guard_minimum=_int(env, "SYNC_DELETION_GUARD_MINIMUM", 20, minimum=0),
            quarantine_after_failures=_int(env, "SYNC_QUARANTINE_AFTER_FAILURES", 5, minimum=1),
            lease_seconds=_int(env, "SYNC_LEASE_SECONDS", 60, minimum=5),
            sync_now_cooldown_seconds=_int(env, "SYNC_NOW_COOLDOWN_SECONDS", 120, minimum=0),
            sync_customer_limit_per_minute=_int(env, "SYNC_CUSTOMER_LIMIT_PER_MINUTE", 10, minimum=1, maximum=1000),
            token_encryption_key=env.get("SYNC_TOKEN_ENCRYPTION_KEY", "").strip(),
            webhook_certificate_hosts=_list(env, "WEBHOOK_CERTIFICATE_HOSTS", DEFAULT_WEBHOOK_CERTIFICATE_HOSTS,
                                            lower=True),
            webhook_trust_anchors=_list(env, "WEBHOOK_TRUST_ANCHORS", ()),
            webhook_certificate_issuer=(env.get("WEBHOOK_CERTIFICATE_ISSUER", "").strip()
                                        or DEFAULT_WEBHOOK_CERTIFICATE_ISSUER),
            webhook_certificate_paths=_list(env, "WEBHOOK_CERTIFICATE_PATHS", DEFAULT_WEBHOOK_CERTIFICATE_PATHS),
            webhook_max_event_age_days=max_event_age_days,
            history_retention_days=history_days,
            change_log_retention_days=_int(env, "SYNC_CHANGE_LOG_RETENTION_DAYS", 400, minimum=1, maximum=3650),
            app_service_auth_enabled=env.get("WEBSITE_AUTH_ENABLED", "").strip().lower() == "true",
            environ=env,
        )

    def account(self, account_id: str) -> Account:
        for account in self.accounts:
            if account.id == account_id:
                return account
        raise SettingsError(f"no Partner Center account with id {account_id!r} is configured")


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _float(env: Mapping[str, str], name: str, default: float, *, minimum: float,
           maximum: float | None = None) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if not minimum <= value:  # also refuses nan
        raise SettingsError(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and not value <= maximum:
        raise SettingsError(f"{name} must be at most {maximum}, got {value}")
    return value


def _cloud(env: Mapping[str, str]) -> Cloud:
    raw = env.get("PARTNER_CENTER_CLOUD", "").strip().lower()
    if not raw:
        return PUBLIC
    if raw not in CLOUDS:
        raise SettingsError(f"PARTNER_CENTER_CLOUD must be one of {', '.join(CLOUDS)}, got {raw!r}")
    return CLOUDS[raw]


def _url(env: Mapping[str, str], name: str, default: str) -> str:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not re.match(r"^https?://[^/\s]+", raw):
        raise SettingsError(f"{name} must be an absolute http(s) URL, got {raw!r}")
    return raw.rstrip("/")


def _relationship_kinds(env: Mapping[str, str]) -> frozenset[str]:
    """PARTNER_CENTER_RELATIONSHIP_KINDS: which relationshipToPartner values become organizations."""
    raw = env.get("PARTNER_CENTER_RELATIONSHIP_KINDS", "")
    if not raw.strip():
        return DEFAULT_RELATIONSHIP_KINDS
    kinds = frozenset(normalize_relationship_kind(item) for item in raw.split(",") if item.strip())
    unknown = sorted(kinds - SYNCABLE_RELATIONSHIP_KINDS)
    if not kinds or unknown:
        raise SettingsError(
            f"PARTNER_CENTER_RELATIONSHIP_KINDS must be a comma list of {', '.join(sorted(SYNCABLE_RELATIONSHIP_KINDS))}"
            + (f"; {', '.join(unknown)} is not one" if unknown else "")
        )
    return kinds


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...], *, lower: bool = False) -> tuple[str, ...]:
    """A comma-separated setting as a tuple (empty or unset: ``default``)."""
    items = tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())
    if lower:
        items = tuple(item.lower() for item in items)
    return items or default


def _accounts_from(env: Mapping[str, str]) -> tuple[tuple[Account, ...], tuple[str, ...]]:
    """Accounts from PARTNER_CENTER_ACCOUNTS, or the single-account settings.

    A broken entry is reported (by account and field) and skipped, so it never stops the others.
    """
    raw = env.get("PARTNER_CENTER_ACCOUNTS", "").strip()
    if not raw:
        tenant = env.get("PARTNER_CENTER_TENANT_ID", "").strip()
        client = env.get("PARTNER_CENTER_CLIENT_ID", "").strip()
        if not (tenant and client):
            return (), ()
        account_id = env.get("PARTNER_CENTER_ACCOUNT_ID", "").strip() or "default"
        if not ACCOUNT_ID.fullmatch(account_id):
            return (), ("PARTNER_CENTER_ACCOUNT_ID must be 1-64 letters, digits, '-' or '_'",)
        account = Account(
            id=account_id,
            kind="direct_provider",
            tenant_id=tenant,
            client_id=client,
            client_secret_setting="PARTNER_CENTER_CLIENT_SECRET",
        )
        return (account,), ()
    try:
        entries = json.loads(raw)
    except json.JSONDecodeError as exc:
        return (), (f"PARTNER_CENTER_ACCOUNTS is not valid JSON: {exc.msg} at position {exc.pos}",)
    if not isinstance(entries, list):
        return (), ("PARTNER_CENTER_ACCOUNTS must be a JSON list of account objects",)
    accounts: list[Account] = []
    errors: list[str] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        try:
            account = _account_from(entry, index)
        except SettingsError as exc:
            errors.append(str(exc))
            continue
        if account.id in seen:
            errors.append(f"PARTNER_CENTER_ACCOUNTS[{index}]: duplicate account id {account.id!r}")
            continue
        seen.add(account.id)
        accounts.append(account)
    return tuple(accounts), tuple(errors)


def _account_from(entry: object, index: int) -> Account:
    where = f"PARTNER_CENTER_ACCOUNTS[{index}]"
    if not isinstance(entry, dict):
        raise SettingsError(f"{where} must be an object")
    account_id = entry.get("id")
    if not isinstance(account_id, str) or not ACCOUNT_ID.fullmatch(account_id):
        raise SettingsError(f"{where}.id must be 1-64 letters, digits, '-' or '_'")
    where = f"account {account_id!r}"
    known = {"id", "kind", "tenantId", "clientId", "clientSecretSetting", "refreshTokenSetting"}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise SettingsError(f"{where}: unknown field(s) {', '.join(unknown)}")
    kind = entry.get("kind", "direct_provider")
    if kind not in ACCOUNT_KINDS:
        raise SettingsError(f"{where}.kind must be one of {', '.join(ACCOUNT_KINDS)}")
    values = {}
    for name in ("tenantId", "clientId"):
        value = entry.get(name)
        if not isinstance(value, str) or not value.strip():
            raise SettingsError(f"{where}.{name} is required")
        values[name] = value.strip()
    for name in ("clientSecretSetting", "refreshTokenSetting"):
        value = entry.get(name, "")
        if not isinstance(value, str) or (value and not _SETTING_NAME.match(value)):
            raise SettingsError(f"{where}.{name} must name an app setting, not hold a secret")
        values[name] = value
    if not values["clientSecretSetting"]:
        raise SettingsError(f"{where}.clientSecretSetting is required")
    if kind == "indirect_provider" and not values["refreshTokenSetting"]:
        raise SettingsError(f"{where}.refreshTokenSetting is required for an indirect provider: "
                            "attributing customers to indirect sellers needs app+user tokens")
    return Account(
        id=account_id,
        kind=kind,
        tenant_id=values["tenantId"],
        client_id=values["clientId"],
        client_secret_setting=values["clientSecretSetting"],
        refresh_token_setting=values["refreshTokenSetting"],
    )


@dataclass(frozen=True)
class TelemetrySettings:
    """Where telemetry goes (docs/operations.md). Build with :func:`telemetry_settings`."""

    connection_string: str = field(default="", repr=False)
    uses_entra_id: bool = False
    identity_client_id: str = ""
    otlp_endpoint: str = ""
    service_name: str = ""


def telemetry_settings(environ: Mapping[str, str] | None = None) -> TelemetrySettings:
    """Application Insights (connection string, optional Entra ID authentication) or OTLP.

    ``APPLICATIONINSIGHTS_AUTHENTICATION_STRING`` is ``Authorization=AAD`` (system-assigned
    identity) or ``ClientId=<guid>;Authorization=AAD`` (user-assigned).
    """
    env = os.environ if environ is None else environ
    auth = env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "").strip()
    client_id = ""
    if auth:
        parts = dict(_key_value(part) for part in auth.split(";") if part.strip())
        if parts.get("authorization", "").lower() != "aad":
            raise SettingsError("APPLICATIONINSIGHTS_AUTHENTICATION_STRING must be 'Authorization=AAD' or "
                                "'ClientId=<guid>;Authorization=AAD'")
        client_id = parts.get("clientid", "")
    return TelemetrySettings(
        connection_string=env.get("APPLICATIONINSIGHTS_CONNECTION_STRING", "").strip(),
        uses_entra_id=bool(auth),
        identity_client_id=client_id,
        otlp_endpoint=(env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
                       or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()),
        service_name=env.get("OTEL_SERVICE_NAME", "").strip(),
    )


def _key_value(part: str) -> tuple[str, str]:
    key, _, value = part.partition("=")
    return key.strip().lower(), value.strip()
