"""Running a mode for every configured account (or one) in one invocation: what a timer, a sync
unit and the command line do."""

from __future__ import annotations

import logging
from typing import Callable

from shared import telemetry
from shared.host_config import check_time_budget
from shared.partner_center import AuthenticationError
from shared.settings import Settings
from shared.store.runs import RunOutcome
from shared.keys import utc_now
from shared.sync.engine import AccountSync, Deadline, RunResult
from shared.sync.run import InvocationFailed
from shared.sync.stores import SyncStores
from shared.webhooks.processing import process_pending_events
from shared.webhooks.store import WebhookEventStore

log = logging.getLogger(__name__)

# Builds a configured account's sync (``App.account_sync``), on the background lane.
SyncFor = Callable[[str], AccountSync]

# An account's turn needs at least this long to do anything useful; with less, it waits for the next invocation.
_MINIMUM_TURN_SECONDS = 15.0


def raise_if_failed(results: list[RunResult]) -> list[RunResult]:
    """The results, or :class:`InvocationFailed` when any run failed: a timer raises it after every
    account had its turn."""
    failed = [r for r in results if r.outcome == RunOutcome.FAILED]
    if failed:
        raise InvocationFailed("; ".join(f"account {r.account_id}: {r.mode} run {r.run_id} failed: {r.error}"[:300]
                                         for r in failed), results)
    return results


def run_accounts(mode: str, *, settings: Settings, stores: SyncStores, events: WebhookEventStore,
                 sync_for: SyncFor, account_id: str | None = None, deadline: Deadline | None = None
                 ) -> list[RunResult]:
    """Run ``mode`` ("incremental" or "full") for every configured account, or one, in one invocation.

    Accounts are independent: one whose credentials or run fail is reported in its result and
    the run log, and the others still sync. All of them share the invocation's one time
    ``deadline`` (``SYNC_TIME_BUDGET_SECONDS`` from now when not given): lease waits, the webhook
    drain, every account and any continuation fit inside it; an account whose turn comes with
    too little left is skipped until the next invocation.
    """
    check_time_budget(settings)
    deadline = deadline or Deadline.starting_now(settings.time_budget_seconds)
    for problem in settings.account_errors:
        log.error("account configuration: %s", problem)
    accounts = [settings.account(account_id)] if account_id else list(settings.accounts)
    if not accounts:
        log.warning("no Partner Center account is configured: set PARTNER_CENTER_TENANT_ID/CLIENT_ID/"
                    "CLIENT_SECRET or PARTNER_CENTER_ACCOUNTS")
    results = []
    minimum_turn = min(_MINIMUM_TURN_SECONDS, settings.time_budget_seconds / 4)
    for account in accounts:
        if deadline.left() < minimum_turn:
            results.append(_not_run(stores, account.id, mode, RunOutcome.SKIPPED,
                                    "the invocation's time budget was spent before this account's turn; "
                                    "the next invocation runs it"))
            continue
        try:
            sync = sync_for(account.id)
        except AuthenticationError as exc:
            log.error("account %s: %s", account.id, exc)
            result = _not_run(stores, account.id, mode, RunOutcome.FAILED, str(exc))
            with telemetry.run_span(account.id, mode) as span:
                telemetry.record_run(span, result)
            results.append(result)
            continue
        with telemetry.run_span(account.id, mode, correlation_id=sync.client.correlation_id) as span:
            if mode == "full":
                result = sync.full(deadline)
            else:
                # Webhook events the receiver stored but could not finish are drained first: they are the
                # customers that most want to be on the Platform now. Half the time left at most.
                drain_until = deadline.at - deadline.left() / 2
                process_pending_events(settings, events, account_id=account.id, sync_for=lambda _: sync,
                                       deadline=drain_until)
                result = sync.incremental(deadline)
            telemetry.record_run(span, result, budget_per_minute=settings.max_requests_per_minute)
        results.append(result)
    return results


def _not_run(stores: SyncStores, account_id: str, mode: str, outcome: RunOutcome, error: str) -> RunResult:
    now = utc_now()
    record = stores.runs.start(account_id, mode)
    stores.runs.finish(record, outcome, {}, api_calls=0, throttled_calls=0, error=error)
    return RunResult(account_id, mode, record.run_id, outcome, started_at=now, ended_at=now, error=error)
