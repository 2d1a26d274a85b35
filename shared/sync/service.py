"""Composition root: builds clients and stores from settings and runs syncs account by account."""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import timedelta

from shared import telemetry
from shared.host_config import check_time_budget
from shared.partner_center import AuthenticationError, PartnerCenterClient, UserTokenProvider, app_token_provider
from shared.partner_center.budget import BudgetConfig, RequestBudgets
from shared.settings import Account, Settings, get_settings
from shared.store.refresh_tokens import RefreshTokenStore
from shared.store.runs import RunOutcome
from shared.webhooks.processing import process_pending_events

from .engine import AccountSync, RunResult, SyncOptions, TimeBudget, utcnow
from .stores import SyncStores

log = logging.getLogger(__name__)

# Runs of a whole account draw on the background lane; a single customer someone is waiting for
# (on-demand sync, a webhook event) on the interactive lane, which a reconciliation cannot starve.
BACKGROUND, INTERACTIVE = "background", "interactive"

_stores: dict = {}
_lock = threading.Lock()
request_budgets = RequestBudgets()  # this worker's shared budgets, one per account


def budget_config(settings: Settings) -> BudgetConfig:
    """The figures of every account's shared request budget."""
    return BudgetConfig(settings.max_requests_per_minute, settings.interactive_reserve_percent,
                        settings.budget_fallback_instances)


def stores_for(settings: Settings) -> SyncStores:
    """The stores for the configured storage connection, opened (and tables created) once per process."""
    connection = settings.require_storage()
    with _lock:
        stores = _stores.get(connection)
        if stores is None:
            stores = SyncStores.open(connection, quarantine_after=settings.quarantine_after_failures)
            _stores[connection] = stores
        return stores


def sync_options(settings: Settings) -> SyncOptions:
    return SyncOptions(
        page_size=settings.page_size,
        concurrency=settings.concurrency,
        time_budget_seconds=settings.time_budget_seconds,
        audit_overlap=timedelta(minutes=settings.audit_overlap_minutes),
        deletion_guard_percent=settings.deletion_guard_percent,
        deletion_guard_minimum=settings.deletion_guard_minimum,
        lease_seconds=settings.lease_seconds,
        relationship_kinds=frozenset(settings.relationship_kinds),
        incremental_interval_seconds=schedule_interval_seconds(settings.incremental_schedule),
    )


def schedule_interval_seconds(schedule: str, default: float = 300.0) -> float:
    """The interval of a simple repeating NCRONTAB schedule ("0 */5 * * * *" is 300 s); ``default``
    for anything else (a fixed time of day, lists, ranges)."""
    fields = schedule.split()
    if len(fields) != 6:
        return default
    units = (1, 60, 3600)
    for position, unit in enumerate(units):
        field, rest = fields[position], fields[position + 1:3]
        if field.startswith("*/") and field[2:].isdigit() and all(f == "*" for f in rest) \
                and all(f.isdigit() for f in fields[:position]):
            return max(1, int(field[2:])) * unit
        if field == "*" and all(f == "*" for f in rest) and all(f.isdigit() for f in fields[:position]):
            return unit
    return default


def client_for(account: Account, settings: Settings, stores: SyncStores, lane: str = BACKGROUND) -> PartnerCenterClient:
    """The account's client: app+user tokens when it has a refresh token, app-only otherwise; its
    calls drawn from the account's request budget shared by every instance, on ``lane``."""
    secret = account.client_secret(settings.environ)
    if not secret:
        raise AuthenticationError(
            f"account {account.id}: the setting {account.client_secret_setting or 'PARTNER_CENTER_CLIENT_SECRET'} "
            "holding the client secret is empty"
        )
    if account.refresh_token_setting:
        tokens = _user_token_provider(account, settings, stores, secret)
    else:
        tokens = app_token_provider(settings.authority_url, account.tenant_id, account.client_id, secret,
                                    cloud=settings.cloud)
    return PartnerCenterClient(
        settings.api_url,
        tokens,
        request_budgets.lane(stores.tables.client(stores.tables.names.request_budget), account.id,
                             budget_config(settings), lane=lane),
        pool_size=max(4, settings.concurrency * 2),
    )


_user_tokens: dict[tuple[str, str], UserTokenProvider] = {}


def _user_token_provider(account: Account, settings: Settings, stores: SyncStores, secret: str) -> UserTokenProvider:
    """One app+user token provider per account and process: the access token is reused between runs."""
    configured = settings.environ.get(account.refresh_token_setting, "")
    if not configured:
        raise AuthenticationError(f"account {account.id}: the setting {account.refresh_token_setting} "
                                  "holding the refresh token is empty")
    if not settings.token_encryption_key:
        raise AuthenticationError(f"account {account.id}: SYNC_TOKEN_ENCRYPTION_KEY is not set, so its rotated "
                                  "refresh token cannot be stored safely")
    key = (account.id, hashlib.sha256(f"{configured}|{secret}|{settings.authority_url}|{settings.cloud.audience}"
                                      .encode()).hexdigest())
    with _lock:
        provider = _user_tokens.get(key)
        if provider is None:
            try:
                vault = RefreshTokenStore(stores.tables, account.id, configured, settings.token_encryption_key)
            except ValueError as exc:
                raise AuthenticationError(f"account {account.id}: {exc}") from None
            provider = UserTokenProvider(settings.authority_url, account.tenant_id, account.client_id, secret, vault,
                                         cloud=settings.cloud)
            _user_tokens[key] = provider
        return provider


def account_sync(account: Account, settings: Settings, stores: SyncStores, lane: str = BACKGROUND) -> AccountSync:
    """The account's sync; ``lane`` is :data:`INTERACTIVE` for work someone is waiting for."""
    return AccountSync(account.id, client_for(account, settings, stores, lane), stores, sync_options(settings),
                       indirect_provider=account.is_indirect_provider)


# An account's turn needs at least this long to do anything useful; with less, it waits for the next invocation.
_MINIMUM_TURN_SECONDS = 15.0


class RunsFailed(RuntimeError):
    """Raised by a timer after every account ran, when any account's run failed: the Functions
    host then records the invocation as failed, and the standard failed-invocation alert fires."""

    def __init__(self, results: list[RunResult]) -> None:
        failed = [r for r in results if r.outcome == RunOutcome.FAILED]
        super().__init__("; ".join(f"account {r.account_id}: {r.mode} run {r.run_id} failed: {r.error}"[:300]
                                   for r in failed))
        self.results = results


def raise_if_failed(results: list[RunResult]) -> list[RunResult]:
    """The results, or :class:`RunsFailed` when any run failed."""
    if any(r.outcome == RunOutcome.FAILED for r in results):
        raise RunsFailed(results)
    return results


def run_accounts(mode: str, *, account_id: str | None = None, settings: Settings | None = None,
                 stores: SyncStores | None = None, budget: TimeBudget | None = None) -> list[RunResult]:
    """Run ``mode`` ("incremental" or "full") for every configured account, or one, in one invocation.

    Accounts are independent: one whose credentials or run fail is reported in its result and
    the run log, and the others still sync. All of them share the invocation's one time
    ``budget`` (``SYNC_TIME_BUDGET_SECONDS`` from now when not given): lease waits, the webhook
    drain, every account and any continuation fit inside it; an account whose turn comes with
    too little left is skipped until the next invocation.
    """
    settings = settings or get_settings()
    check_time_budget(settings)
    budget = budget or TimeBudget.starting_now(settings.time_budget_seconds)
    stores = stores or stores_for(settings)
    for problem in settings.account_errors:
        log.error("account configuration: %s", problem)
    accounts = [settings.account(account_id)] if account_id else list(settings.accounts)
    if not accounts:
        log.warning("no Partner Center account is configured: set PARTNER_CENTER_TENANT_ID/CLIENT_ID/"
                    "CLIENT_SECRET or PARTNER_CENTER_ACCOUNTS")
    results = []
    minimum_turn = min(_MINIMUM_TURN_SECONDS, settings.time_budget_seconds / 4)
    for account in accounts:
        if budget.left() < minimum_turn:
            results.append(_not_run(stores, account.id, mode, RunOutcome.SKIPPED,
                                    "the invocation's time budget was spent before this account's turn; "
                                    "the next invocation runs it"))
            continue
        try:
            sync = account_sync(account, settings, stores)
        except AuthenticationError as exc:
            log.error("account %s: %s", account.id, exc)
            result = _not_run(stores, account.id, mode, RunOutcome.FAILED, str(exc))
            with telemetry.run_span(account.id, mode) as span:
                telemetry.record_run(span, result)
            results.append(result)
            continue
        with telemetry.run_span(account.id, mode, correlation_id=sync.client.correlation_id) as span:
            if mode == "full":
                result = sync.full(budget)
            else:
                # Webhook events the receiver stored but could not finish are drained first: they are the
                # customers that most want to be on the Platform now. Half the budget at most.
                drain_until = budget.deadline - budget.left() / 2
                process_pending_events(settings, stores, account_id=account.id, sync_for=lambda _: sync,
                                       deadline=drain_until)
                result = sync.incremental(budget)
            telemetry.record_run(span, result, budget_per_minute=settings.max_requests_per_minute)
        results.append(result)
    return results


def _not_run(stores: SyncStores, account_id: str, mode: str, outcome: RunOutcome, error: str) -> RunResult:
    now = utcnow()
    record = stores.runs.start(account_id, mode)
    stores.runs.finish(record, outcome, {}, api_calls=0, throttled_calls=0, error=error)
    return RunResult(account_id, mode, record.run_id, outcome, started_at=now, ended_at=now, error=error)
