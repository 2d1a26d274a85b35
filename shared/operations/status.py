"""Per-account sync status for operators (docs/http-api.md)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Callable

from azure.core.exceptions import AzureError

from shared.settings import Settings, SettingsError
from shared.store import RunRecord
from shared.sync.stores import SyncStores
from shared.webhooks.processing import poison_events, webhook_status
from shared.webhooks.queue import EventQueue
from shared.webhooks.store import WebhookEventStore

from .units import UnitQueue, poison_units


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
    }


class StatusReader:
    """What operators see of an account, read from the stores and queues the app hands in.

    The queues and the event store are given as callables: building one may fail on a missing
    setting, and status still answers with the rest.
    """

    def __init__(self, settings: Settings, stores: SyncStores, *, events: Callable[[], WebhookEventStore],
                 unit_queue: Callable[[], UnitQueue], event_queue: Callable[[], EventQueue]) -> None:
        self.settings = settings
        self.stores = stores
        self._events = events
        self._unit_queue = unit_queue
        self._event_queue = event_queue

    @property
    def configured(self) -> set[str]:
        return {account.id for account in self.settings.accounts}

    def parked_units_of(self, account_id: str) -> list[dict]:
        """Units of this account waiting in the poison queue: from queue dispatch, or a "sync now"."""
        try:
            units = poison_units(self._unit_queue(), self.stores, self.configured)
        except (SettingsError, AzureError) as exc:
            return [{"problem": f"parked units cannot be read: {str(exc).splitlines()[0]}"}]
        return [unit for unit in units if unit.get("account") == account_id]

    def webhook_events_of(self, account_id: str) -> dict:
        """The account's pending, failed and poisoned webhook events, with their counts.

        ``poisoned``: messages the ``webhook-events`` queue trigger gave up on (in
        ``webhook-events-poison``); their events stay pending for the incremental run.
        """
        try:
            events = self._events()
            status = webhook_status(events, account_id)
        except SettingsError as exc:
            return {"problem": f"webhook events cannot be read: {exc}"}
        found = {"pending": status["pending"], "failed": status["failed"]}
        try:
            found["poisoned"] = [entry for entry in poison_events(self._event_queue(), events, self.configured)
                                 if entry.get("account") == account_id]
        except (SettingsError, AzureError) as exc:  # the queue's account is not the tables': status still answers
            found["poisoned"] = [{"problem": f"poisoned webhook events cannot be read: {str(exc).splitlines()[0]}"}]
        found["counts"] = {"pending": len(found["pending"]), "failed": len(found["failed"]),
                           "poisoned": sum("messageId" in entry for entry in found["poisoned"])}
        return found

    def account(self, account_id: str, now: datetime | None = None) -> dict:
        """Last runs, lag since the last successful sync, failing and quarantined customers, held endings."""
        now = now or datetime.now(timezone.utc)
        stores = self.stores
        last = {mode: (stores.runs.latest(account_id, mode, limit=1) or [None])[0] for mode in ("incremental", "full")}
        succeeded = [stores.runs.last_completed(account_id, mode) for mode in ("incremental", "full")]
        finished = [r.finished_at for r in succeeded if r is not None and r.finished_at]
        failing = stores.failures.failing(account_id)
        checkpoint = stores.state.get_checkpoint(account_id)
        return {
            "account": account_id,
            "last_incremental": run_summary(last["incremental"]),
            "last_full": run_summary(last["full"]),
            "last_successful_full": run_summary(stores.runs.last_completed(account_id, "full")),
            "lag_seconds": round((now - max(finished)).total_seconds()) if finished else None,
            "watermark": _iso(stores.state.get_watermark(account_id)),
            "reconciliation_in_progress": checkpoint.data if checkpoint else None,
            "failing": [
                {"tenantId": f.tenant_id, "count": f.count, "lastError": f.last_error, "quarantined": f.quarantined}
                for f in failing.values()
            ],
            "quarantined": sorted(t for t, f in failing.items() if f.quarantined),
            "held": [
                {"heldId": h.held_id, "status": h.status, "runId": h.run_id, "lastRunId": h.last_run_id,
                 "sightings": h.sightings, "organizations": h.tenant_count,
                 "activeOrganizations": h.active_count, "heldAt": h.held_at.isoformat()}
                for h in [*stores.held.pending(account_id), *stores.held.approving(account_id)]
            ],
            # Runs whose process died mid-run (crash, scale-in, recycling), closed by the run after them.
            "abandoned_runs": [run_summary(r) for r in stores.runs.abandoned(account_id, limit=10)],
            "parked_units": self.parked_units_of(account_id),
            "webhook_events": self.webhook_events_of(account_id),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
