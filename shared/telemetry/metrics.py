"""The sync's metric instruments, dimensioned by account and mode (names in :mod:`.names`).

Counters and histograms are recorded when a run ends. The state gauges (sync lag, quarantined
customers, held endings, pending and failed webhook events, parked units) are observed: a
callback reads the stores each time the metric reader collects, for every watched account.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from typing import Callable, Iterable

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.metrics import CallbackOptions, Observation

from . import names

log = logging.getLogger(__name__)

# A metric collection calls every gauge's callback in turn: one reading of the stores serves them all.
_READING_TTL_SECONDS = 5.0
_BUDGET_WINDOW_SECONDS = 60.0


def meter() -> metrics.Meter:
    """The service's meter (a no-op one until telemetry is configured)."""
    return metrics.get_meter(names.SCOPE)


@lru_cache(maxsize=1)
def _instruments() -> dict:
    m = meter()
    counters = {
        name: m.create_counter(metric, unit="{organization}", description=f"organizations {name} by sync runs")
        for name, metric in names.ORGANIZATION_COUNTERS.items()
    }
    return {
        "organizations": counters,
        "runs": m.create_counter(names.RUNS, unit="{run}", description="finished runs, by outcome"),
        "duration": m.create_histogram(names.RUN_DURATION, unit="s", description="wall time of a run"),
        "calls": m.create_counter(names.PARTNER_CENTER_CALLS, unit="{call}",
                                  description="Partner Center calls made by runs"),
        "throttled": m.create_counter(names.PARTNER_CENTER_THROTTLED, unit="{call}",
                                      description="Partner Center calls answered 429"),
        "budget": m.create_histogram(names.BUDGET_UTILIZATION, unit="1",
                                     description="a run's calls per minute over the account's request budget"),
        "published": m.create_counter(names.EVENTS_PUBLISHED, unit="{event}",
                                      description="organization events the Platform's topic accepted"),
        "publishing_lag": m.create_histogram(names.EVENTS_PUBLISHING_LAG, unit="s",
                                             description="age of the oldest change not yet published, after a pass"),
        "not_stored": m.create_counter(names.WEBHOOK_EVENTS_NOT_STORED, unit="{event}",
                                       description="authentic webhook events answered 200 and not stored, by reason"),
    }


def record_event_not_stored(account_id: str, reason: str) -> None:
    """Count one authentic webhook event the receiver acknowledged without storing it."""
    _instruments()["not_stored"].add(1, {names.ACCOUNT: account_id, names.REASON: reason})


def record_publishing(account_id: str, published: int, lag_seconds: float) -> None:
    """One publishing pass of an account: events accepted, and the oldest waiting change's age."""
    instruments = _instruments()
    if published:
        instruments["published"].add(published, {names.ACCOUNT: account_id})
    instruments["publishing_lag"].record(lag_seconds, {names.ACCOUNT: account_id})


def record_run_metrics(account_id: str, mode: str, outcome: str, counts: dict, *, api_calls: int,
                       throttled_calls: int, duration_seconds: float | None,
                       budget_per_minute: int | None = None) -> None:
    """Add one finished run to the counters and histograms."""
    instruments = _instruments()
    dims = {names.ACCOUNT: account_id, names.MODE: mode}
    for name, counter in instruments["organizations"].items():
        if counts.get(name):
            counter.add(int(counts[name]), dims)
    instruments["runs"].add(1, {**dims, names.OUTCOME: outcome})
    if api_calls:
        instruments["calls"].add(api_calls, dims)
    if throttled_calls:
        instruments["throttled"].add(throttled_calls, dims)
    if duration_seconds is not None:
        instruments["duration"].record(duration_seconds, {**dims, names.OUTCOME: outcome})
        if budget_per_minute:
            # A short run is measured against a whole minute: the budget is a sliding minute.
            minutes = max(duration_seconds, _BUDGET_WINDOW_SECONDS) / 60.0
            instruments["budget"].record(api_calls / (minutes * budget_per_minute), dims)


@dataclass
class AccountReading:
    """What the state gauges report for one account at one moment."""

    account_id: str
    lag_seconds: dict[str, float] = field(default_factory=dict)  # by mode: since its last completed run
    quarantined: int = 0
    held: int = 0
    webhook_pending: int | None = None
    webhook_failed: int | None = None
    parked_units: int | None = None


def read_account(stores, account_id: str, *, now: datetime | None = None,
                 webhook_events: Callable[[str], dict] | None = None,
                 parked_units: Callable[[str], list] | None = None) -> AccountReading:
    """One account's gauges from the run log, the failure ledger, held endings and, when given,
    the webhook inbox and the poison queue."""
    now = now or datetime.now(timezone.utc)
    reading = AccountReading(account_id)
    for mode in ("incremental", "full"):
        last = stores.runs.last_completed(account_id, mode)
        if last is not None and last.finished_at is not None:
            reading.lag_seconds[mode] = max(0.0, (now - last.finished_at).total_seconds())
    reading.quarantined = sum(1 for failure in stores.failures.failing(account_id).values() if failure.quarantined)
    reading.held = len(stores.held.pending(account_id))
    if webhook_events is not None:
        events = webhook_events(account_id)
        if "problem" not in events:
            reading.webhook_pending, reading.webhook_failed = len(events["pending"]), len(events["failed"])
    if parked_units is not None:
        units = parked_units(account_id)
        if not any("problem" in unit and "account" not in unit for unit in units):
            reading.parked_units = sum(1 for unit in units if unit.get("account") == account_id)
    return reading


class StateWatch:
    """The accounts whose state the gauges report, and how to read them."""

    def __init__(self, read: Callable[[], Iterable[AccountReading]]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self._cached: tuple[float, list[AccountReading]] | None = None

    def readings(self) -> list[AccountReading]:
        with self._lock:
            if self._cached is not None and time.monotonic() - self._cached[0] < _READING_TTL_SECONDS:
                return self._cached[1]
            # The reads' own Table Storage spans would be noise every minute: trace them unsampled.
            token = otel_context.attach(_unsampled())
            try:
                readings = list(self._read())
            except Exception as exc:  # a gauge must never break the metric export
                log.warning("sync state gauges: cannot read the stores: %s", exc)
                readings = []
            finally:
                otel_context.detach(token)
            self._cached = (time.monotonic(), readings)
            return readings


def _unsampled() -> otel_context.Context:
    """A context whose (non-recording) parent span says "not sampled": children are not recorded."""
    parent = trace.NonRecordingSpan(trace.SpanContext(
        trace_id=random.getrandbits(128) | 1, span_id=random.getrandbits(64) | 1, is_remote=False,
        trace_flags=trace.TraceFlags(trace.TraceFlags.DEFAULT)))
    return trace.set_span_in_context(parent)


_watches: list[StateWatch] = []
_watches_lock = threading.Lock()


def watch_state(stores, account_ids: Iterable[str] | Callable[[], Iterable[str]], *,
                webhook_events: Callable[[str], dict] | None = None,
                parked_units: Callable[[str], list] | None = None) -> StateWatch:
    """Report these accounts' state in the gauges. ``stores`` is a ``SyncStores`` or a callable
    returning one (read at collection time, so settings need not be valid yet)."""

    def read() -> Iterable[AccountReading]:
        opened = stores() if callable(stores) else stores
        ids = account_ids() if callable(account_ids) else account_ids
        return [read_account(opened, account_id, webhook_events=webhook_events, parked_units=parked_units)
                for account_id in ids]

    state = StateWatch(read)
    _register_gauges()
    with _watches_lock:
        _watches.append(state)
    return state


def unwatch_state(state: StateWatch) -> None:
    """Stop reporting a watch's accounts."""
    with _watches_lock:
        if state in _watches:
            _watches.remove(state)


def _readings() -> list[AccountReading]:
    with _watches_lock:
        watches = list(_watches)
    return [reading for state in watches for reading in state.readings()]


def _observe(pick: Callable[[AccountReading], Iterable[tuple[float, dict]]]):
    def callback(options: CallbackOptions) -> Iterable[Observation]:
        for reading in _readings():
            for value, extra in pick(reading):
                yield Observation(value, {names.ACCOUNT: reading.account_id, **extra})
    return callback


def _lag(reading: AccountReading):
    return [(seconds, {names.MODE: mode}) for mode, seconds in reading.lag_seconds.items()]


def _one(attribute: str):
    def pick(reading: AccountReading):
        value = getattr(reading, attribute)
        return [] if value is None else [(value, {})]
    return pick


@lru_cache(maxsize=1)
def _register_gauges() -> None:
    m = meter()
    m.create_observable_gauge(names.SYNC_LAG, [_observe(_lag)], unit="s",
                              description="seconds since the account's last completed run of each mode")
    m.create_observable_gauge(names.CUSTOMERS_QUARANTINED, [_observe(_one("quarantined"))], unit="{customer}",
                              description="customers quarantined after repeated failures")
    m.create_observable_gauge(names.ENDINGS_HELD, [_observe(_one("held"))], unit="{change}",
                              description="held endings waiting for an operator")
    m.create_observable_gauge(names.WEBHOOK_EVENTS_PENDING, [_observe(_one("webhook_pending"))], unit="{event}",
                              description="webhook events stored and not yet processed")
    m.create_observable_gauge(names.WEBHOOK_EVENTS_FAILED, [_observe(_one("webhook_failed"))], unit="{event}",
                              description="webhook events whose processing failed")
    m.create_observable_gauge(names.UNITS_PARKED, [_observe(_one("parked_units"))], unit="{unit}",
                              description="sync units parked in the poison queue")
