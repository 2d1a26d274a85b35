"""Per-account sync status for operators (docs/http-api.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from azure.core.exceptions import AzureError, ResourceNotFoundError, ServiceRequestError

from shared.credentials import TokenUnavailable
from shared.settings import Settings, SettingsError
from shared.store import RunRecord
from shared.store.outbox import EventOutbox
from shared.sync.stores import SyncStores
from shared.webhooks.processing import poison_events, webhook_status
from shared.webhooks.queue import POISON_QUEUE as POISON_EVENTS, EventQueue
from shared.webhooks.store import WebhookEventStore

from .units import POISON_QUEUE as POISON_UNITS, UnitQueue, poison_units


# The services a part lives in: one that does not answer is not tried again within an answer.
TABLES, QUEUES = "Table Storage", "Queue Storage"


def run_summary(record: RunRecord | None) -> dict | None:
    if record is None:
        return None
    return {
        "runId": record.run_id,
        "mode": record.mode,
        "outcome": record.outcome,
        "startedAt": record.started_at.isoformat(),
        "endedAt": record.finished_at.isoformat() if record.finished_at else None,
        "counts": dict(record.counts),
        "apiCalls": record.api_calls,
        "throttledCalls": record.throttled_calls,
        "error": record.error,
        "by": record.by,
    }


class Reads:
    """The reads behind one answer (one account, or every account of ``GET /api/ops/status``).

    A part (a table or a queue) that failed is not read again within the answer, nor is any part of
    a storage service that could not be reached at all (no connection): each is reported unavailable
    at once, so an outage costs one short timeout, not one per part and account. The poison queues,
    shared by the accounts, are read once.
    """

    def __init__(self) -> None:
        self.failed: dict[str, str] = {}  # part -> why it could not be read
        self.down: dict[str, str] = {}  # service -> why nothing of it is tried again
        self.cache: dict[str, object] = {}


class _Answer:
    """One account's status as it is read: each part guarded, the unavailable ones listed."""

    def __init__(self, reads: Reads) -> None:
        self.reads = reads
        self.unavailable: list[dict] = []

    def read(self, part: str, service: str, fields: list[str], read: Callable[[], object], empty: object):
        """``read()``, or ``empty`` when the part does not exist yet (nothing yet) or cannot be read
        (then listed in :attr:`unavailable` with its ``part``, ``reason`` and the status ``fields`` it feeds)."""
        reads = self.reads
        reason = reads.failed.get(part) or reads.down.get(service)
        if reason is not None:
            reads.failed.setdefault(part, reason)
        else:
            try:
                return read()
            except ResourceNotFoundError:  # a table or queue nothing has created yet
                return empty
            except (SettingsError, AzureError) as exc:
                if isinstance(exc, TokenUnavailable) and service == TABLES:
                    # The sync's own tables refuse our identity: nothing of status can be read, and
                    # the answer is that configuration problem (503 naming the connection).
                    raise
                reason = reads.failed[part] = _reason(exc)
                if isinstance(exc, ServiceRequestError):  # the service cannot be reached at all
                    reads.down.setdefault(service, f"not tried: {service} could not be reached for the {part} "
                                                   f"({reason})")
        entry = next((e for e in self.unavailable if e["part"] == part), None)
        if entry is None:
            self.unavailable.append({"part": part, "reason": reason, "fields": list(fields)})
        else:
            entry["fields"] += [name for name in fields if name not in entry["fields"]]
        return empty


class StatusReader:
    """What operators see of an account, read from the stores and queues the app hands in.

    The queues and the event store are given as callables: building one may fail on a missing
    setting, and status still answers with the rest. Every part that cannot be read is named in the
    account's ``unavailable`` list (docs/http-api.md); the fields it feeds show as empty.
    """

    def __init__(self, settings: Settings, stores: SyncStores, *, events: Callable[[], WebhookEventStore],
                 unit_queue: Callable[[], UnitQueue], event_queue: Callable[[], EventQueue],
                 outbox: EventOutbox | None = None) -> None:
        """``outbox``: the organization events waiting to be published, when events are configured."""
        self.settings = settings
        self._outbox = outbox
        self.stores = stores
        self._events = events
        self._unit_queue = unit_queue
        self._event_queue = event_queue

    @property
    def configured(self) -> set[str]:
        return {account.id for account in self.settings.accounts}

    def parked_units_of(self, account_id: str, answer: _Answer | None = None) -> list[dict]:
        """Units of this account waiting in the poison queue: from queue dispatch, or a "sync now"."""
        answer = answer or _Answer(Reads())
        units = answer.read(POISON_UNITS + " queue", QUEUES, ["parked_units"], lambda: self._cached(
            answer.reads, "parked", lambda: poison_units(self._unit_queue(), self.stores, self.configured)), None)
        if units is None:
            return [{"problem": f"parked units cannot be read: {answer.reads.failed[POISON_UNITS + ' queue']}"}]
        return [unit for unit in units if unit.get("account") == account_id]

    def webhook_events_of(self, account_id: str, answer: _Answer | None = None) -> dict:
        """The account's pending, failed and poisoned webhook events, with their counts.

        ``poisoned``: messages the ``webhook-events`` queue trigger gave up on (in
        ``webhook-events-poison``); their events stay pending for the incremental run.
        """
        answer = answer or _Answer(Reads())
        try:
            events = self._events()
        except SettingsError as exc:
            return {"problem": f"webhook events cannot be read: {exc}"}
        part = f"{events.table_name} table"
        status = answer.read(part, TABLES, ["webhook_events.pending", "webhook_events.failed"],
                             lambda: webhook_status(events, account_id), None)
        found = {"pending": status["pending"] if status else [], "failed": status["failed"] if status else []}
        poison_part = POISON_EVENTS + " queue"
        poisoned = answer.read(poison_part, QUEUES, ["webhook_events.poisoned"], lambda: self._cached(
            answer.reads, "poisoned", lambda: poison_events(self._event_queue(), events, self.configured)), None)
        if poisoned is None:  # the queue's account is not the tables': status still answers
            found["poisoned"] = [{"problem": f"poisoned webhook events cannot be read: "
                                             f"{answer.reads.failed[poison_part]}"}]
        else:
            found["poisoned"] = [entry for entry in poisoned if entry.get("account") == account_id]
        found["counts"] = {"pending": len(found["pending"]), "failed": len(found["failed"]),
                           "poisoned": sum("messageId" in entry for entry in found["poisoned"])}
        return found

    def accounts(self, account_ids: list[str], now: datetime | None = None) -> list[dict]:
        """The status of each account, read together: a part that cannot be read is tried once."""
        reads = Reads()
        return [self.account(account_id, now, reads=reads) for account_id in account_ids]

    def account(self, account_id: str, now: datetime | None = None, *, reads: Reads | None = None) -> dict:
        """Last runs, lag since the last successful sync, failing and quarantined customers, held
        endings, and ``unavailable``: the parts that could not be read."""
        now = now or datetime.now(timezone.utc)
        stores, names = self.stores, self.stores.tables.names
        answer = _Answer(reads or Reads())

        def read(table: str, fields: list[str], reader: Callable[[], object], empty: object = None):
            return answer.read(f"{table} table", TABLES, fields, reader, empty)

        runs_fields = ["last_incremental", "last_full", "last_successful_full", "lag_seconds", "abandoned_runs"]
        last = {mode: read(names.runs, runs_fields, lambda mode=mode: stores.runs.newest(account_id, mode))
                for mode in ("incremental", "full")}
        succeeded = [read(names.runs, runs_fields, lambda mode=mode: stores.runs.last_completed(account_id, mode))
                     for mode in ("incremental", "full")]
        finished = [r.finished_at for r in succeeded if r is not None and r.finished_at]
        failing = read(names.failures, ["failing", "quarantined"], lambda: stores.failures.failing(account_id), {})
        checkpoint = read(names.sync_state, ["watermark", "reconciliation_in_progress"],
                          lambda: stores.state.get_checkpoint(account_id))
        watermark = read(names.sync_state, ["watermark", "reconciliation_in_progress"],
                         lambda: stores.state.get_watermark(account_id))
        held = read(names.held, ["held"], lambda: [*stores.held.pending(account_id),
                                                   *stores.held.approving(account_id)], [])
        abandoned = read(names.runs, runs_fields, lambda: stores.runs.abandoned(account_id, limit=10), [])
        manual = read(names.sync_state, ["last_sync_now"], lambda: stores.state.manual_request(account_id))
        status = {
            "account": account_id,
            "last_incremental": run_summary(last["incremental"]),
            "last_full": run_summary(last["full"]),
            "last_successful_full": run_summary(succeeded[1]),
            "lag_seconds": round((now - max(finished)).total_seconds()) if finished else None,
            "watermark": _iso(watermark),
            "reconciliation_in_progress": checkpoint.data if checkpoint else None,
            "failing": [
                {"tenantId": f.tenant_id, "count": f.count, "lastError": f.last_error, "quarantined": f.quarantined}
                for f in failing.values()
            ],
            "quarantined": sorted(t for t, f in failing.items() if f.quarantined),
            "held": [
                {"heldId": h.held_id, "status": h.status, "runId": h.run_id, "lastRunId": h.last_run_id,
                 "sightings": h.sightings, "organizations": h.tenant_count,
                 "activeOrganizations": h.active_count, "heldAt": h.held_at.isoformat(),
                 "decidedBy": h.decided_by, "decidedAt": _iso(h.decided_at)}
                for h in held
            ],
            # Who last asked for "sync now", and when (docs/http-api.md#sign-in-and-roles).
            "last_sync_now": {"at": manual[0].isoformat(), "by": manual[1]} if manual else None,
            # Runs whose process died mid-run (crash, scale-in, recycling), closed by the run after them.
            "abandoned_runs": [run_summary(r) for r in abandoned],
            "parked_units": self.parked_units_of(account_id, answer),
            "webhook_events": self.webhook_events_of(account_id, answer),
        }
        if self._outbox is not None:
            waiting = read(names.outbox, ["events"], lambda: self._outbox.waiting(account_id))
            status["events"] = events_waiting(waiting, now)
        status["unavailable"] = answer.unavailable
        return status

    @staticmethod
    def _cached(reads: Reads, key: str, read: Callable[[], list]) -> list:
        if key not in reads.cache:
            reads.cache[key] = read()
        return reads.cache[key]


def events_waiting(waiting: tuple[int, datetime | None] | None, now: datetime) -> dict | None:
    """The organization events waiting to be published (docs/events.md): how many, since when."""
    if waiting is None:
        return None
    count, oldest = waiting
    return {"waiting": count, "oldestWaiting": _iso(oldest),
            "lagSeconds": round((now - oldest).total_seconds()) if oldest else 0}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _reason(exc: Exception) -> str:
    """Why a part cannot be read, in one line (the SDKs' messages run over several)."""
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__
