"""The two timers that are the product: incremental sync and nightly full reconciliation."""

from __future__ import annotations

import logging

import azure.functions as func

from shared import app
from shared.operations.accounts import raise_if_failed
from shared.operations.units import DISPATCH_QUEUE, dispatch_mode, enqueue_units
from shared.sync.engine import FULL, INCREMENTAL, Deadline

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("incremental_sync")
@bp.timer_trigger(schedule="%INCREMENTAL_SYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def incremental_sync(timer: func.TimerRequest) -> None:
    """New customers, billing-profile changes and ended relationships, every few minutes."""
    _run(INCREMENTAL, timer)


@bp.function_name("full_reconciliation")
@bp.timer_trigger(schedule="%FULL_SYNC_SCHEDULE%", arg_name="timer", run_on_startup=False, use_monitor=True)
def full_reconciliation(timer: func.TimerRequest) -> None:
    """The nightly safety net: make every organization agree with Partner Center."""
    _run(FULL, timer, prune=True)


def _run(mode: str, timer: func.TimerRequest, *, prune: bool = False) -> None:
    if timer.past_due:
        log.warning("%s timer is past due; running now", mode)
    wired = app.current()
    deadline = Deadline.starting_now(wired.settings.time_budget_seconds)
    if dispatch_mode(wired.settings) == DISPATCH_QUEUE:
        # One unit per account: the runtime spreads them over instances (shared/functions/sync_units.py).
        enqueue_units(mode, settings=wired.settings, queue=wired.unit_queue)
        results = []
    else:
        results = wired.run_accounts(mode, deadline=deadline)
    # Right after the writes; also what an earlier invocation could not publish (docs/events.md).
    wired.publish_events_after_writes(deadline)
    for result in results:
        log.info("%s run for account %s: %s %s", mode, result.account_id, result.outcome, result.counts.as_dict())
    if prune:
        _prune(wired, deadline)
    # Every account had its turn; now the host must learn of any failure (failed-invocation alerts).
    raise_if_failed(results)


def _prune(wired: app.App, deadline: Deadline) -> None:
    """The nightly retention, with the time the runs left (docs/storage.md#retention); a prune that
    fails is logged and retried the next night, never the runs' failure."""
    try:
        report = wired.prune(deadline=deadline)
    except Exception:  # storage errors of any kind: the next night prunes again
        log.exception("the nightly prune failed; the next one continues")
        return
    log.info("nightly prune: deleted %s%s", report.totals(), "" if report.finished else " (continues next night)")
