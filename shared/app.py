"""The one module that wires the app: everything a trigger needs, built from the settings.

An :class:`App` holds the settings and builds, once each and on first use, what the code below
it works with: the sync's stores, the webhook event store, the queues, the signature verifier,
Partner Center clients with their token providers and the account's request budget. Nothing is
built at import or at construction, so a bad setting fails the invocation that needs it (with a
message naming the setting), never the host's indexing of the functions.

A worker has one App (:func:`current`); what must stay per process lives on it: MSAL's token
caches, managed-identity credentials, the certificate cache, the budgets' slices. Tests build an
App of their own and install it with :func:`use`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from datetime import timedelta
from functools import cached_property
from typing import Mapping

from shared import telemetry
from shared.operations.accounts import run_accounts
from shared.operations.retention import PruneReport, prune_history
from shared.operations.status import StatusReader
from shared.operations.units import UNIT_QUEUE_CONNECTION, UnitQueue
from shared.events.live import LivePublisher
from shared.events.publisher import Publishing, publish
from shared.events.replay import replay
from shared.events.topic import Topic, TopicSettings
from shared.partner_center import (
    AppTokenProvider,
    AuthenticationError,
    PartnerCenterClient,
    UserTokenProvider,
)
from shared.partner_center.budget import BACKGROUND, INTERACTIVE, BudgetConfig, LaneBudget, RequestBudgets
from shared.settings import Account, Settings
from shared.store.connections import ManagedIdentities, StorageConnection, binding_storage, sync_storage
from shared.store.outbox import EventOutbox, OutboxChangeLog
from shared.store.refresh_tokens import RefreshTokenStore
from shared.sync.engine import AccountSync, Deadline, RunResult, SyncOptions
from shared.sync.stores import SyncStores
from shared.webhooks.queue import EVENT_QUEUE_CONNECTION, EventQueue
from shared.webhooks.registration import WebhookRegistration
from shared.webhooks.signature import SignatureVerifier
from shared.webhooks.store import TABLE_NAME as EVENTS_TABLE, WebhookEventStore

# Runs of a whole account draw on the background lane (BACKGROUND); a single customer someone is
# waiting for (on-demand sync, a webhook event) on the interactive lane (INTERACTIVE), which a
# reconciliation cannot starve.
log = logging.getLogger(__name__)

__all__ = ["App", "BACKGROUND", "INTERACTIVE", "current", "use", "watch_current"]


class App:
    """The settings and everything built from them, for one worker (or one test)."""

    def __init__(self, settings: Settings, *, stores: SyncStores | None = None,
                 events: WebhookEventStore | None = None) -> None:
        """``stores`` and ``events``: already opened ones to use (tests and benchmarks on tables of their own)."""
        self.settings = settings
        if stores is not None:
            self.__dict__["stores"] = stores
        if events is not None:
            self.__dict__["events"] = events
        self.identities = ManagedIdentities()
        self.budgets = RequestBudgets()  # one shared budget per account, so a process's runs book together
        self._lock = threading.Lock()
        self._app_tokens: dict[tuple, AppTokenProvider] = {}
        self._user_tokens: dict[tuple, UserTokenProvider] = {}

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "App":
        return cls(Settings.from_env(os.environ if environ is None else environ))

    # Storage -------------------------------------------------------------------------------------

    @cached_property
    def storage(self) -> StorageConnection:
        """The sync's storage (``SYNC_STORAGE``, else ``AzureWebJobsStorage``)."""
        return sync_storage(self.settings.environ).with_credentials(self.identities)

    @cached_property
    def stores(self) -> SyncStores:
        """The sync's tables, opened (and created when missing) once."""
        return SyncStores.open(self.storage, quarantine_after=self.settings.quarantine_after_failures,
                               events=self.topic_settings is not None)

    @cached_property
    def read_stores(self) -> SyncStores:
        """The sync's tables for reads a person waits for (status, the operators' routes): short
        timeouts and one retry (``StorageConnection.for_person``), and nothing is created."""
        given = self.__dict__.get("stores")
        connection, names = (given.tables.connection, given.tables.names) if given is not None else (self.storage, None)
        return SyncStores.open(connection.for_person(), names, create=False,
                               quarantine_after=self.settings.quarantine_after_failures)

    @cached_property
    def read_events(self) -> WebhookEventStore:
        """The webhook event inbox for reads a person waits for; its table is not created."""
        given = self.__dict__.get("events")
        return WebhookEventStore.open(self.storage.for_person(), given.table_name if given is not None else EVENTS_TABLE,
                                      create=False)

    @cached_property
    def events(self) -> WebhookEventStore:
        """The webhook event inbox, opened (and its table created) once."""
        return WebhookEventStore.open(self.storage)

    def queue_storage(self, connection: str) -> StorageConnection:
        """The storage a queue trigger's ``connection`` names, read as the Functions host reads it."""
        return binding_storage(connection, self.settings.environ).with_credentials(self.identities)

    @cached_property
    def event_queue(self) -> EventQueue:
        """The ``webhook-events`` queue, where the receiver hands events to their trigger."""
        return EventQueue.open(self.queue_storage(EVENT_QUEUE_CONNECTION), parked_seconds=self.parked_seconds)

    @cached_property
    def unit_queue(self) -> UnitQueue:
        """The ``sync-units`` queue: timers in queue dispatch and "sync now" put units on it."""
        return UnitQueue(self.queue_storage(UNIT_QUEUE_CONNECTION), parked_seconds=self.parked_seconds)

    @property
    def parked_seconds(self) -> int:
        """How long a parked (poison) message lives: as long as the rest of the history."""
        return self.settings.history_retention_days * 86400

    @cached_property
    def verifier(self) -> SignatureVerifier:
        """The webhook signature verifier, with the worker's certificate cache."""
        s = self.settings
        return SignatureVerifier(s.webhook_certificate_hosts, s.webhook_trust_anchors, s.webhook_certificate_issuer,
                                 path_prefixes=s.webhook_certificate_paths)

    @cached_property
    def status(self) -> StatusReader:
        """What operators see of each account: read with a person's short timeouts, creating nothing."""
        return StatusReader(self.settings, self.read_stores, events=lambda: self.read_events,
                            unit_queue=lambda: self.read_unit_queue, event_queue=lambda: self.read_event_queue,
                            outbox=EventOutbox(self.read_stores.tables) if self.topic_settings else None)

    @cached_property
    def read_unit_queue(self) -> UnitQueue:
        """The ``sync-units`` queues for a person's reads (short timeouts), built once."""
        return UnitQueue(self.queue_storage(UNIT_QUEUE_CONNECTION).for_person())

    @cached_property
    def read_event_queue(self) -> EventQueue:
        """The ``webhook-events`` queues for a person's reads (short timeouts), built once."""
        return EventQueue.open(self.queue_storage(EVENT_QUEUE_CONNECTION).for_person())

    def run_accounts(self, mode: str, *, account_id: str | None = None,
                     deadline: Deadline | None = None) -> list[RunResult]:
        """Run ``mode`` for every configured account (or one) in this invocation; with events on, the
        run's new organizations are published while it goes on (docs/events.md)."""
        deadline = deadline or Deadline.starting_now(self.settings.time_budget_seconds)
        if self.topic_settings is None or not isinstance(self.stores.changes, OutboxChangeLog):
            return run_accounts(mode, settings=self.settings, stores=self.stores, events=self.events,
                                sync_for=self.account_sync, account_id=account_id, deadline=deadline)
        with LivePublisher(self.stores.changes, self.stores.changes.outbox, self.topic, deadline.left) as live:
            results = run_accounts(mode, settings=self.settings, stores=self.stores, events=self.events,
                                   sync_for=self.account_sync, account_id=account_id, deadline=deadline)
        if live.published or live.error:
            log.info("%d event(s) published during the run%s", live.published,
                     f"; the pass after it sends the rest ({live.error})" if live.error else "")
        return results

    def prune(self, *, account_id: str | None = None, deadline: Deadline | None = None) -> PruneReport:
        """Delete every configured account's (or one's) history and change log past their retention,
        within ``deadline`` (``SYNC_TIME_BUDGET_SECONDS`` from now when not given)."""
        s = self.settings
        ids = [s.account(account_id).id] if account_id else [account.id for account in s.accounts]
        return prune_history(stores=self.stores, events=self.events, account_ids=ids,
                             history_days=s.history_retention_days, change_log_days=s.change_log_retention_days,
                             deadline=deadline or Deadline.starting_now(s.time_budget_seconds))

    # Organization events (docs/events.md) ---------------------------------------------------------

    @cached_property
    def topic_settings(self) -> TopicSettings | None:
        """The Platform's Event Grid topic (``PLATFORM_EVENTS__*``), or ``None``: no events."""
        return TopicSettings.from_environ(self.settings.environ)

    @cached_property
    def topic(self) -> Topic:
        """The topic's client, publishing with the app's managed identity."""
        if self.topic_settings is None:
            raise RuntimeError("PLATFORM_EVENTS__topicEndpointUri is not set: no events are published")
        return Topic(self.topic_settings, self.identities.get(self.topic_settings.client_id))

    def publish_events(self, *, account_id: str | None = None, deadline: Deadline | None = None) -> list[Publishing]:
        """Publish what waits in the outbox of every configured account (or one), within ``deadline``;
        nothing when events are not configured."""
        if self.topic_settings is None:
            return []
        s = self.settings
        ids = [s.account(account_id).id] if account_id else [account.id for account in s.accounts]
        deadline = deadline or Deadline.starting_now(s.time_budget_seconds)
        return publish(self.stores.outbox, self.stores.organizations, self.topic, ids, deadline.left,
                       running=lambda account: [run.run_id for run in self.stores.runs.running(account)])

    def publish_events_after_writes(self, deadline: Deadline | None = None, account_id: str | None = None) -> None:
        """What the triggers call after their writes: a failure is logged, the next pass publishes."""
        try:
            for report in self.publish_events(account_id=account_id, deadline=deadline):
                if report.published or report.error:
                    log.info("account %s: %d event(s) published, %d waiting%s", report.account_id, report.published,
                             report.waiting, f" ({report.error})" if report.error else "")
        except Exception:  # storage or the topic: the outbox keeps every change for the next pass
            log.exception("publishing organization events failed; the next pass continues")

    def replay_events(self, account_id: str, since, deadline: Deadline | None = None) -> tuple[int, int]:
        """Publish the account's change log from ``since`` again (same ids); ``(sent, skipped)``."""
        account = self.settings.account(account_id)
        deadline = deadline or Deadline.starting_now(self.settings.time_budget_seconds)
        return replay(self.stores.changes, self.stores.organizations, self.topic, account.id, since, deadline.left)

    # Partner Center ------------------------------------------------------------------------------

    def client(self, account: Account, lane: str = BACKGROUND, *, pool_size: int | None = None) -> PartnerCenterClient:
        """The account's client: app+user tokens when it has a refresh token, app-only otherwise; its
        calls drawn from the account's request budget shared by every instance, on ``lane``."""
        settings = self.settings
        secret = account.client_secret(settings.environ)
        if not secret:
            raise AuthenticationError(
                f"account {account.id}: the setting {account.client_secret_setting or 'PARTNER_CENTER_CLIENT_SECRET'} "
                "holding the client secret is empty"
            )
        tokens = self._user_tokens_of(account, secret) if account.refresh_token_setting else \
            self._app_tokens_of(account, secret)
        return PartnerCenterClient(
            settings.api_url,
            tokens,
            self.budget(account.id, lane),
            pool_size=pool_size or max(4, settings.concurrency * 2),
        )

    def account_sync(self, account_id: str, lane: str = BACKGROUND) -> AccountSync:
        """The configured account's sync; ``lane`` is :data:`INTERACTIVE` for work someone is waiting for."""
        account = self.settings.account(account_id)
        return AccountSync(account.id, self.client(account, lane), self.stores, self.sync_options,
                           indirect_provider=account.is_indirect_provider)

    def interactive_sync(self, account_id: str) -> AccountSync:
        """The account's sync for a customer someone is waiting for: never behind a reconciliation."""
        return self.account_sync(account_id, INTERACTIVE)

    def registration(self, account_id: str) -> WebhookRegistration:
        """The account's webhook registration client: app-only tokens, the interactive lane (an operator waits)."""
        account = self.settings.account(account_id)
        secret = account.client_secret(self.settings.environ)
        if not secret:
            raise AuthenticationError(f"account {account.id}: the setting {account.client_secret_setting} is empty")
        tokens = self._app_tokens_of(account, secret)
        return WebhookRegistration(PartnerCenterClient(self.settings.api_url, tokens,
                                                       self.budget(account.id, INTERACTIVE), pool_size=2))

    def budget(self, account_id: str, lane: str = BACKGROUND) -> LaneBudget:
        """The account's request budget, shared by every instance, as one lane."""
        tables = self.stores.tables
        return self.budgets.lane(tables.client(tables.names.request_budget), account_id, self.budget_config, lane=lane)

    @cached_property
    def budget_config(self) -> BudgetConfig:
        s = self.settings
        return BudgetConfig(s.max_requests_per_minute, s.interactive_reserve_percent, s.budget_fallback_instances,
                            s.interactive_max_percent)

    @cached_property
    def sync_options(self) -> SyncOptions:
        s = self.settings
        return SyncOptions(
            page_size=s.page_size,
            concurrency=s.concurrency,
            time_budget_seconds=s.time_budget_seconds,
            audit_overlap=timedelta(minutes=s.audit_overlap_minutes),
            deletion_guard_percent=s.deletion_guard_percent,
            deletion_guard_minimum=s.deletion_guard_minimum,
            lease_seconds=s.lease_seconds,
            relationship_kinds=frozenset(s.relationship_kinds),
            incremental_interval_seconds=schedule_interval_seconds(s.incremental_schedule),
        )

    def _app_tokens_of(self, account: Account, secret: str) -> AppTokenProvider:
        """One app-only provider per (authority, tenant, client, secret, audience): tokens are reused
        between runs; a rotated secret gets a fresh provider."""
        s = self.settings
        key = (s.authority_url.rstrip("/"), account.tenant_id, account.client_id,
               hashlib.sha256(secret.encode()).hexdigest(), s.cloud.audience)
        with self._lock:
            provider = self._app_tokens.get(key)
            if provider is None:
                provider = self._app_tokens[key] = AppTokenProvider(
                    s.authority_url, account.tenant_id, account.client_id, client_secret=secret, cloud=s.cloud)
            return provider

    def _user_tokens_of(self, account: Account, secret: str) -> UserTokenProvider:
        """One app+user provider per account and credentials: the access token is reused between runs."""
        s = self.settings
        configured = s.environ.get(account.refresh_token_setting, "")
        if not configured:
            raise AuthenticationError(f"account {account.id}: the setting {account.refresh_token_setting} "
                                      "holding the refresh token is empty")
        if not s.token_encryption_key:
            raise AuthenticationError(f"account {account.id}: SYNC_TOKEN_ENCRYPTION_KEY is not set, so its rotated "
                                      "refresh token cannot be stored safely")
        key = (account.id, hashlib.sha256(f"{configured}|{secret}|{s.authority_url}|{s.cloud.audience}"
                                          .encode()).hexdigest())
        with self._lock:
            provider = self._user_tokens.get(key)
            if provider is None:
                try:
                    vault = RefreshTokenStore(self.stores.tables, account.id, configured, s.token_encryption_key)
                except ValueError as exc:
                    raise AuthenticationError(f"account {account.id}: {exc}") from None
                provider = self._user_tokens[key] = UserTokenProvider(
                    s.authority_url, account.tenant_id, account.client_id, secret, vault, cloud=s.cloud)
            return provider


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


_current: App | None = None
_current_lock = threading.Lock()


def current() -> App:
    """The worker's App, built from the environment on first use."""
    global _current
    with _current_lock:
        if _current is None:
            _current = App.from_env()
        return _current


_watching = False


def watch_current() -> None:
    """Report the worker's accounts in the telemetry gauges, read from whichever App is current at
    collection time (so nothing is read, and no setting is needed, before then)."""
    global _watching
    with _current_lock:
        if _watching:
            return
        _watching = True
    telemetry.watch_state(lambda: current().stores, lambda: [account.id for account in current().settings.accounts],
                          webhook_events=lambda account_id: current().status.webhook_events_of(account_id),
                          parked_units=lambda account_id: current().status.parked_units_of(account_id))


def use(app: App | None) -> App | None:
    """Make ``app`` the worker's App (tests, the local host); ``None`` forgets it, so the next
    :func:`current` reads the environment again. Returns the App it replaced."""
    global _current
    with _current_lock:
        previous, _current = _current, app
        return previous
