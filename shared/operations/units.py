"""Units of work: one account's run, taken from a queue by whichever Functions instance is free.

With ``SYNC_DISPATCH=queue`` the timers do not run the accounts themselves: they put one *unit*
per configured account on the ``sync-units`` queue, and the Functions runtime spreads the units
over its instances through the queue trigger. A unit is a small JSON message::

    {"account": "contoso-direct", "mode": "incremental", "requestedAt": "2025-01-01T02:00:00+00:00"}

(plus ``"continues": "<run id>"`` when it carries on a checkpointed reconciliation).

Processing a unit runs that one account (:func:`shared.operations.accounts.run_accounts`), and what
happens to the message follows from the run:

- the run finished, checkpointed, or found the account's lease held by another run (which covers
  this unit): the unit is done and the message is deleted;
- the run failed: :class:`~shared.sync.run.InvocationFailed` is raised, so the runtime makes the message visible again
  and retries it; after ``maxDequeueCount`` attempts the runtime moves it to ``sync-units-poison``,
  and the last attempt writes a ``parked`` row in the account's run log first (a poison message,
  docs/glossary.md);
- the message is malformed, or names an account that is not configured: retrying cannot help, so
  it is put in ``sync-units-poison`` at once with a log line saying why.

Nothing here knows about Azure Functions; the queue trigger and the local runner hand it a body.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

from shared.settings import Settings, SettingsError
from shared.store.connections import StorageConnection, as_connection
from shared.store.queues import PoisonedQueue, account_field, json_message
from shared.store.runs import RunRecord
from shared.sync.engine import FULL, INCREMENTAL, RunResult
from shared.sync.run import InvocationFailed
from shared.sync.stores import SyncStores

log = logging.getLogger(__name__)

UNIT_QUEUE = "sync-units"
# The name the Functions runtime gives the poison queue of a queue trigger.
POISON_QUEUE = UNIT_QUEUE + "-poison"
# The app setting the queue trigger listens through. AzureWebJobsStorage is always set on a
# Function App, so the trigger never breaks a deployment that keeps SYNC_DISPATCH=inline.
UNIT_QUEUE_CONNECTION = "AzureWebJobsStorage"

DISPATCH_INLINE = "inline"
DISPATCH_QUEUE = "queue"
DISPATCH_MODES = (DISPATCH_INLINE, DISPATCH_QUEUE)
UNIT_MODES = (INCREMENTAL, FULL)
# Run-log mode and outcome of the row that records a unit given up after its last attempt.
PARKED_RUN_MODE = "unit"
PARKED = "parked"

_FIELDS = {"account", "mode", "requestedAt", "continues"}
_RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,80}$")
_MAX_BODY_BYTES = 4096


class MalformedUnit(ValueError):
    """A message that is not a unit; the text names the problem, never the message's values."""


@dataclass(frozen=True)
class SyncUnit:
    """One account's run of one mode, requested at a moment."""

    account_id: str
    mode: str
    requested_at: datetime
    continues: str = ""  # the run id of the checkpointed reconciliation this unit carries on

    def to_json(self) -> str:
        body = {"account": self.account_id, "mode": self.mode, "requestedAt": self.requested_at.isoformat()}
        if self.continues:
            body["continues"] = self.continues
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def parse(cls, body: bytes | str) -> "SyncUnit":
        """The unit in a message body, validated strictly; :class:`MalformedUnit` otherwise."""
        fields = json_message(body, fields=_FIELDS, max_bytes=_MAX_BODY_BYTES, error=MalformedUnit)
        account = account_field(fields, MalformedUnit)
        mode = fields.get("mode")
        if mode not in UNIT_MODES:
            raise MalformedUnit(f"'mode' must be one of {', '.join(UNIT_MODES)}")
        requested = fields.get("requestedAt")
        try:
            requested_at = datetime.fromisoformat(requested) if isinstance(requested, str) else None
        except ValueError:
            requested_at = None
        if requested_at is None or requested_at.utcoffset() is None:
            raise MalformedUnit("'requestedAt' must be an ISO 8601 date and time with a UTC offset")
        continues = fields.get("continues", "")
        if not isinstance(continues, str) or (continues and not _RUN_ID.match(continues)):
            raise MalformedUnit("'continues' must be a run id")
        return cls(account, mode, requested_at.astimezone(timezone.utc), continues)


def dispatch_mode(settings: Settings) -> str:
    """``SYNC_DISPATCH``: ``inline`` (the timers run every account themselves) or ``queue``."""
    value = settings.environ.get("SYNC_DISPATCH", "").strip().lower() or DISPATCH_INLINE
    if value not in DISPATCH_MODES:
        raise SettingsError(f"SYNC_DISPATCH must be one of {', '.join(DISPATCH_MODES)}")
    return value


class UnitQueue(PoisonedQueue):
    """The ``sync-units`` queue and its poison queue in one storage account."""

    def __init__(self, connection: StorageConnection | str, name: str = UNIT_QUEUE, *, parked_seconds: int = -1) -> None:
        storage = as_connection(connection)
        super().__init__(storage.queue(name), storage.queue(name + "-poison"), parked_seconds=parked_seconds)

    def send(self, unit: SyncUnit) -> str:
        """Put a unit on the queue; returns the message id."""
        return self.send_body(unit.to_json().encode())


def enqueue_units(mode: str, *, settings: Settings, queue: UnitQueue, now: datetime | None = None) -> list[SyncUnit]:
    """One unit of ``mode`` for every configured account; returns the units sent."""
    if mode not in UNIT_MODES:
        raise ValueError(f"mode must be one of {', '.join(UNIT_MODES)}")
    for problem in settings.account_errors:
        log.error("account configuration: %s", problem)
    requested_at = now or datetime.now(timezone.utc)
    units = [SyncUnit(account.id, mode, requested_at) for account in settings.accounts]
    if not units:
        log.warning("no Partner Center account is configured: no %s units to send", mode)
    for unit in units:
        message_id = queue.send(unit)
        log.info("%s unit for account %s queued as message %s", mode, unit.account_id, message_id)
    return units


# Runs one mode of one account (``run_accounts`` with the app's stores): ``run(mode, account_id)``.
RunAccount = Callable[[str, str], list[RunResult]]


def process_unit(body: bytes, *, message_id: str, dequeue_count: int, max_dequeue_count: int,
                 settings: Settings, stores: SyncStores, queue: UnitQueue, run: RunAccount) -> str:
    """Process one unit; returns what became of it.

    ``"parked"`` (malformed, or for an account that is not configured), ``"covered"`` (a run that
    started after the unit was requested already completed), or the run's outcome (``succeeded``,
    ``skipped`` when another run holds the lease, ...). A failed run raises :class:`~shared.sync.run.InvocationFailed`.
    """
    try:
        unit = SyncUnit.parse(body)
    except MalformedUnit as exc:
        return _park(body, message_id, f"malformed unit: {exc}", queue)
    if unit.account_id not in {account.id for account in settings.accounts}:
        return _park(body, message_id, f"unit for account {unit.account_id}, which is not configured "
                     "(or its PARTNER_CENTER_ACCOUNTS entry is invalid)", queue)
    covering = _covering_run(stores, unit)
    if covering is not None:
        log.info("%s unit %s for account %s is covered by %s run %s, which started after it was requested",
                 unit.mode, message_id, unit.account_id, covering.mode, covering.run_id)
        return "covered"
    [result] = run(unit.mode, unit.account_id)
    if result.outcome == "skipped":
        # The run holding the lease is doing this account's work now; a second one would wait for it.
        log.info("%s unit %s for account %s acknowledged: another run holds the account's lease",
                 unit.mode, message_id, unit.account_id)
    elif result.outcome == "failed":
        if dequeue_count >= max_dequeue_count:
            _record_parked(stores, unit, message_id, dequeue_count, result)
        raise InvocationFailed(f"account {unit.account_id}: {unit.mode} run {result.run_id} failed "
                         f"(attempt {dequeue_count} of {max_dequeue_count}): {result.error}")
    elif result.outcome == "checkpointed":
        # The reconciliation stopped at its time budget: carry on at once, on whichever instance is free.
        queue.send(
            SyncUnit(unit.account_id, unit.mode, datetime.now(timezone.utc), continues=result.run_id))
        log.info("account %s: %s run %s checkpointed; a unit continuing it is queued",
                 unit.account_id, unit.mode, result.run_id)
    else:
        log.info("%s unit %s for account %s: run %s %s", unit.mode, message_id, unit.account_id,
                 result.run_id, result.outcome)
    return result.outcome


def _covering_run(stores: SyncStores, unit: SyncUnit) -> RunRecord | None:
    """A completed run that started after the unit was requested: it did the unit's work already.

    A full reconciliation reads everything an incremental run would, so it covers both kinds.
    """
    modes = (FULL,) if unit.mode == FULL else (INCREMENTAL, FULL)
    for mode in modes:
        last = stores.runs.last_completed(unit.account_id, mode)
        if last is not None and last.started_at >= unit.requested_at:
            return last
    return None


def _park(body: bytes, message_id: str, reason: str, queue: UnitQueue) -> str:
    parked_id = queue.park(body)
    log.error("%s: message %s parked in %s as %s (retrying cannot help)", reason, message_id, POISON_QUEUE,
              parked_id)
    return PARKED


def _record_parked(stores: SyncStores, unit: SyncUnit, message_id: str, attempts: int, result: RunResult) -> None:
    """The run log says that the unit was given up, next to the failed runs that caused it."""
    reason = (f"{unit.mode} unit {message_id} (requested {unit.requested_at.isoformat()}) parked in {POISON_QUEUE} "
              f"after {attempts} failed attempts; last error: {result.error}")
    record = stores.runs.start(unit.account_id, PARKED_RUN_MODE)
    stores.runs.finish(record, PARKED, {}, api_calls=0, throttled_calls=0, error=reason)
    log.error("account %s: %s", unit.account_id, reason)


def poison_units(queue: UnitQueue, stores: SyncStores, configured: set[str]) -> list[dict]:
    """The units waiting in the poison queue (the oldest 32), for status pages and operators.

    Each: ``messageId``, ``parkedAt``, and either ``account``, ``mode``, ``requestedAt`` and
    ``problem`` (the account's last ``parked`` run-log entry) or, for a malformed message, only
    ``problem`` (what is wrong with it; its content is not repeated).
    """

    def describe(body: bytes) -> dict:
        try:
            unit = SyncUnit.parse(body)
        except MalformedUnit as exc:
            return {"problem": f"malformed unit: {exc}"}
        if unit.account_id in configured:
            problem = _last_parked_reason(stores, unit.account_id)
        else:
            problem = f"account {unit.account_id} is not configured"
        return {"account": unit.account_id, "mode": unit.mode, "requestedAt": unit.requested_at.isoformat(),
                "problem": problem}

    return queue.poison_messages(describe, at="parkedAt")


def _last_parked_reason(stores: SyncStores, account_id: str) -> str:
    record = stores.runs.newest(account_id, PARKED_RUN_MODE)
    if record is not None:
        return record.error
    return "its run failed on every attempt; the account's run log has the errors"
