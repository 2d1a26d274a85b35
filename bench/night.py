"""`python -m bench.night`: a large account's night, with time compressed.

A distributor with N customers (default 50,000) at Partner Center's real limit (500 requests a
minute per tenant, the sync told 450) needs about N + N/500 calls for its reconciliation, about
111 minutes at N=50,000, spread over invocations of at most `SYNC_TIME_BUDGET_SECONDS` (480 s),
while the 5-minute incremental timer, webhooks and on-demand syncs keep working and customers
accept and leave.

Time is compressed by a factor K (``--compress``, default 12): the simulator's limit and the
sync's budget are K times the real ones per (real) minute, its latency is the real latency / K,
and the invocation budget, the incremental interval, the lease and functionTimeout are the real
ones / K. Everything else (the code, Azurite, the simulator over HTTPS) is the real thing.

The run: yesterday's state is synced first (at full speed), then the night starts. Threads play
the Functions host: one runs the reconciliation's units back to back (queue dispatch: a
checkpointed unit is continued by the next), one fires the incremental timer (never overlapping
itself), one plays customers: accepting at random places of the list (a third of them also synced
on demand at once, as a webhook would), leaving, and coming back. It prints, in real (unscaled)
minutes where it says so:

- whether the walk completed, and its duration against the bound set by the budget;
- incremental latency, acceptance to organization, against one incremental interval, and whether
  each acceptance arrived by the end of the first incremental run that started after it;
- organizations ended while their customer was live (want 0), and endings of departed customers;
- the longest invocation against its time budget and functionTimeout;
- API calls and throttled calls (want 0).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import functools
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone

import requests

from shared.app import App, INTERACTIVE
from bench.__main__ import _Simulator
from devstack.local.azurite import Azurite
from shared.partner_center.budget.ledger import WINDOW_SECONDS
from shared.settings import Settings
from shared.keys import account_range
from shared.store.runs import RunOutcome
from shared.sync.engine import FULL, INCREMENTAL, Deadline

ACCOUNT = "night"
print = functools.partial(print, flush=True)  # progress as it happens, also through a pipe
REAL_BUDGET_PER_MINUTE = 450
REAL_LIMIT_PER_MINUTE = 500
REAL_INVOCATION_SECONDS = 480
REAL_FUNCTION_TIMEOUT = 600
REAL_INTERVAL_SECONDS = 300
REAL_LEASE_SECONDS = 60


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.night", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--compress", type=float, default=12.0, help="time compression factor K")
    parser.add_argument("--latency", type=float, default=0.1, help="real seconds per Partner Center call")
    parser.add_argument("--accept-every", type=float, default=60.0,
                        help="real seconds between two customers accepting (random positions)")
    parser.add_argument("--leave-every", type=float, default=240.0, help="real seconds between two departures")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--verbose", action="store_true", help="print every invocation")
    args = parser.parse_args(argv)
    k = args.compress
    rng = random.Random(args.seed)
    invocation = REAL_INVOCATION_SECONDS / k
    interval = REAL_INTERVAL_SECONDS / k
    budget_per_minute = int(REAL_BUDGET_PER_MINUTE * k)

    with tempfile.TemporaryDirectory(prefix="night-") as state_dir, Azurite() as azurite, \
            _Simulator(args.customers, 0.0, 10_000_000, state_dir) as sim:
        env = {**sim.settings, "SYNC_STORAGE_CONNECTION": azurite.connection_string,
               "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT, "SYNC_CONCURRENCY": "16",
               "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": "100000"}
        os.environ["REQUESTS_CA_BUNDLE"] = sim.ca_path  # the sync runs in this process
        control = _Control(sim)
        print(f"night: N={args.customers}, compression K={k:g}: budget {budget_per_minute}/min "
              f"(limit {int(REAL_LIMIT_PER_MINUTE * k)}), latency {args.latency / k * 1000:.1f} ms, invocation "
              f"{invocation:.1f} s, incremental every {interval:.1f} s, lease {max(5.0, REAL_LEASE_SECONDS / k):.0f} s")
        started = time.monotonic()
        [seeded] = App(Settings.from_env(env)).run_accounts(FULL, deadline=Deadline.starting_now(3600))
        print(f"night: yesterday's state synced in {time.monotonic() - started:.0f} s ({seeded.outcome}, "
              f"{seeded.counts.created} organizations)")

        # Yesterday ended more than a minute ago: its calls have left Partner Center's window
        # (otherwise the night's first minute would be spent waiting for them).
        time.sleep(WINDOW_SECONDS)
        env.update({"PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": str(budget_per_minute),
                    "SYNC_TIME_BUDGET_SECONDS": f"{invocation:.3f}",
                    "SYNC_LEASE_SECONDS": str(max(5, round(REAL_LEASE_SECONDS / k))),
                    "INCREMENTAL_SYNC_SCHEDULE": f"*/{max(1, round(interval))} * * * * *"})
        settings = Settings.from_env(env)
        control.night(latency=args.latency / k, limit=int(REAL_LIMIT_PER_MINUTE * k))
        night = _Night(settings, control, rng, k, invocation, interval, args)
        night.run()
        night.report()
    return 0


class _Control:
    """The simulator's control API."""

    def __init__(self, sim: _Simulator) -> None:
        self.base = f"{sim.url}/_simulator"
        self.verify = sim.ca_path
        self.session = requests.Session()

    def call(self, method: str, path: str, body: dict | None = None):
        response = self.session.request(method, self.base + path, json=body, verify=self.verify, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def night(self, *, latency: float, limit: int) -> None:
        self.call("PATCH", "/settings", {"latency": latency, "requestsPerMinute": limit})
        self.call("DELETE", "/counters")

    def listed(self) -> list[str]:
        return [c["id"] for c in self.call("GET", "/customers")]


class _Night:
    def __init__(self, settings: Settings, control: _Control, rng: random.Random, k: float, invocation: float,
                 interval: float, args) -> None:
        self.settings, self.control, self.rng, self.k = settings, control, rng, k
        self.invocation, self.interval, self.args = invocation, interval, args
        # One App for the night, as one worker has: every run shares its token caches and budget slices.
        self.app = App(settings)
        self.stores = self.app.stores
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.invocations: list[tuple[str, float, str]] = []  # mode, wall seconds, outcome
        self.accepted: dict[str, float] = {}  # tenant -> monotonic time it accepted
        self.latencies: list[float] = []
        self.arrived: dict[str, float] = {}  # tenant -> monotonic time its organization was seen
        self.incremental_runs: list[tuple[float, float]] = []  # (start, end), monotonic
        self.churn: dict[str, list[tuple[datetime, str]]] = {}  # tenant -> [(when, "leave"|"return")]
        self.walk_seconds: float | None = None
        self.walk_units = 0
        self.walk_calls = 0
        self.calls_before = self.calls_during_walk = 0
        self._seen: set[str] = set()

    def run(self) -> None:
        threads = [threading.Thread(target=self._reconciliation, name="full-units"),
                   threading.Thread(target=self._incremental_timer, name="incremental-timer"),
                   threading.Thread(target=self._customers, name="customers"),
                   threading.Thread(target=self._watch_latency, name="latency")]
        self.began = time.monotonic()
        for thread in threads:
            thread.start()
        threads[0].join()
        time.sleep(self.interval * 1.5)  # the last acceptances reach the next incremental run
        self.done.set()
        for thread in threads[1:]:
            thread.join()

    def _invoke(self, mode: str) -> list:
        started = time.monotonic()
        results = self.app.run_accounts(mode)
        wall = time.monotonic() - started
        with self.lock:
            self.invocations.append((mode, wall, ",".join(str(r.outcome) for r in results)))
        if self.args.verbose:
            print(f"  {time.monotonic() - self.began:7.1f} s {mode}: {wall:.1f} s "
                  + ", ".join(f"{r.outcome} {r.counts.as_dict()} {r.api_calls} calls {r.error}" for r in results),
                  flush=True)
        return results

    def _calls(self, counters: dict | None = None) -> int:
        """Partner Center calls the simulator answered so far (every kind the sync makes)."""
        counters = counters or self.control.call("GET", "/counters")
        return sum(v for name, v in counters.items() if name in ("list_customers", "billing_profile", "get_customer",
                                                                 "audit_records", "customer_relationships"))

    def _reconciliation(self) -> None:
        self.calls_before = self._calls()
        started = time.monotonic()
        failures = 0
        while True:
            [result] = self._invoke(FULL)
            self.walk_units += 1
            self.walk_calls += result.api_calls
            if result.outcome in (RunOutcome.SUCCEEDED, RunOutcome.SUCCEEDED_WITH_FAILURES):
                self.walk_seconds = time.monotonic() - started
                self.calls_during_walk = self._calls() - self.calls_before
                return
            if result.outcome == RunOutcome.FAILED:
                failures += 1
                print(f"night: a reconciliation unit failed: {result.error}", file=sys.stderr)
                if failures >= 5:
                    return

    def _incremental_timer(self) -> None:
        next_tick = time.monotonic() + self.interval
        while not self.done.is_set():
            time.sleep(max(0.0, next_tick - time.monotonic()))
            started = time.monotonic()
            results = self._invoke(INCREMENTAL)
            # The incremental run's own end, not the walk it may continue with the time left.
            own = max(((r.ended_at - r.started_at).total_seconds() for r in results if r.ended_at), default=0.0)
            with self.lock:
                self.incremental_runs.append((started, started + own))
            # A timer never overlaps itself: a long invocation delays the next tick.
            next_tick = max(next_tick + self.interval, time.monotonic())

    def _customers(self) -> None:
        listed = self.control.listed()
        sync = self.app.account_sync(self.settings.accounts[0].id, INTERACTIVE)  # as a webhook
        next_accept = time.monotonic()
        next_leave = time.monotonic() + self.args.leave_every / self.k
        gone: list[str] = []
        while not self.done.is_set() and self.walk_seconds is None:
            now = time.monotonic()
            if now >= next_accept:
                tenant = self.control.call("POST", "/customers", {"position": self.rng.randrange(len(listed))})["tenantId"]
                with self.lock:
                    self.accepted[tenant] = time.monotonic()
                listed.append(tenant)
                if self.rng.random() < 1 / 3:
                    sync.customer(tenant)  # what the webhook receiver does within seconds
                next_accept = now + self.rng.expovariate(self.k / self.args.accept_every)
            if now >= next_leave:
                if gone and self.rng.random() < 0.5:
                    tenant = gone.pop(self.rng.randrange(len(gone)))
                    self.control.call("POST", f"/customers/{tenant}/restore", {"position": self.rng.randrange(100)})
                    self._churned(tenant, "return")
                else:
                    tenant = listed.pop(self.rng.randrange(len(listed)))
                    self.control.call("DELETE", f"/customers/{tenant}")
                    self._churned(tenant, "leave")
                    gone.append(tenant)
                next_leave = now + self.rng.expovariate(self.k / self.args.leave_every)
            time.sleep(0.05)

    def _churned(self, tenant: str, what: str) -> None:
        with self.lock:
            self.churn.setdefault(tenant, []).append((datetime.now(timezone.utc), what))

    def _watch_latency(self) -> None:
        while not self.done.is_set():
            with self.lock:
                waiting = [t for t in self.accepted if t not in self._seen]
            for tenant in waiting:
                if self.stores.organizations.get(ACCOUNT, tenant) is not None:
                    with self.lock:
                        self._seen.add(tenant)
                        self.arrived[tenant] = time.monotonic()
                        self.latencies.append(self.arrived[tenant] - self.accepted[tenant])
            time.sleep(0.2)

    def _endings(self) -> tuple[int, int]:
        """(endings of live customers, endings of departed ones), from the change log's END entries."""
        low, high = account_range(ACCOUNT)
        table = self.stores.tables.changes
        entries = table.query_entities("PartitionKey ge @low and PartitionKey lt @high and Kind eq @kind",
                                       parameters={"low": low, "high": high, "kind": "end"})
        wrong = right = 0
        for entry in entries:
            events = [event for event in self.churn.get(entry["RowKey"], []) if event[0] <= entry["At"]]
            if events and events[-1][1] == "leave":
                right += 1
            else:
                wrong += 1
        return wrong, right

    def _first_run_after_acceptance(self) -> tuple[int, float]:
        """How many acceptances the timer's next run (or the one under way) brought in, and the
        longest incremental run (without the walk it may continue after it)."""
        runs = sorted(self.incremental_runs)
        on_time = 0
        for tenant, accepted in self.accepted.items():
            arrived = self.arrived.get(tenant)
            following = next((end for start, end in runs if start >= accepted), None)
            if arrived is not None and (following is None or arrived <= following + 1.0):  # +1 s: the watcher's poll
                on_time += 1
        return on_time, max((end - start for start, end in runs), default=0.0)

    def report(self) -> None:
        k = self.k
        counters = self.control.call("GET", "/counters")
        wrong, right = self._endings()
        live_now = set(self.control.listed())
        ended_now = {o["RowKey"] for o in self.stores.organizations.list(ACCOUNT, status="relationship_ended")}
        calls = self._calls(counters)
        calls_needed = self.args.customers / 500 + self.args.customers
        bound = calls_needed / (REAL_BUDGET_PER_MINUTE * k / 60)
        budget = self.app.budget(ACCOUNT).budget
        walked = self.walk_seconds or 0
        print(f"night: walk {'completed' if self.walk_seconds else 'DID NOT complete'} in {self.walk_units} units, "
              f"{walked:.0f} s = {walked * k / 60:.0f} real min vs bound {bound:.0f} s = {bound * k / 60:.0f} real min "
              f"(ratio {walked / bound:.2f})")
        # The background lane's pace three ways: the whole budget (the lane may use it all while
        # nobody else calls); the budget less the interactive reserve (issue #25's measure); and
        # what the foreground (incremental runs, on-demand syncs) left of the budget meanwhile.
        whole = calls_needed / (budget.per_minute / WINDOW_SECONDS)
        reserved = calls_needed / ((budget.per_minute - budget.reserve) / WINDOW_SECONDS)
        foreground = max(0, self.calls_during_walk - self.walk_calls)
        left = (self.walk_calls + foreground) / (budget.per_minute / WINDOW_SECONDS)
        print(f"night: the walk against the background lane's pace: the whole budget ({budget.per_minute} calls "
              f"per {WINDOW_SECONDS:.0f} s) {whole:.0f} s (ratio {walked / whole:.2f}); the budget less the "
              f"interactive reserve ({budget.per_minute - budget.reserve} per {WINDOW_SECONDS:.0f} s) {reserved:.0f} s "
              f"(ratio {walked / reserved:.2f}); what the foreground's {foreground} calls left of the budget "
              f"({self.walk_calls} walk calls) {left:.0f} s (ratio {walked / left:.2f})")
        if self.latencies:
            p50, p95 = statistics.median(self.latencies), sorted(self.latencies)[int(0.95 * (len(self.latencies) - 1))]
            print(f"night: incremental latency over {len(self.latencies)} acceptances: p50 {p50 * k / 60:.1f}, "
                  f"p95 {p95 * k / 60:.1f}, max {max(self.latencies) * k / 60:.1f} real min "
                  f"vs one interval {REAL_INTERVAL_SECONDS / 60:.0f} min (max ratio "
                  f"{max(self.latencies) / self.interval:.2f}); {len(self.accepted) - len(self.latencies)} never arrived")
        on_time, slowest_run = self._first_run_after_acceptance()
        print(f"night: organizations there by the end of the first incremental run started after the "
              f"acceptance {on_time} of {len(self.accepted)} (want all); longest incremental run "
              f"{slowest_run * k / 60:.1f} real min, so the worst case is one interval plus that")
        print(f"night: endings of live customers {wrong} (want 0); endings of departed customers {right}; "
              f"live customers shown ended now {len(live_now & ended_now)} (want 0)")
        by_mode: dict[str, list[float]] = {}
        for mode, wall, _ in self.invocations:
            by_mode.setdefault(mode, []).append(wall)
        for mode, walls in sorted(by_mode.items()):
            print(f"night: {mode} invocations {len(walls)}, longest {max(walls):.1f} s vs budget "
                  f"{self.invocation:.1f} s (ratio {max(walls) / self.invocation:.2f}) and functionTimeout "
                  f"{REAL_FUNCTION_TIMEOUT / k:.1f} s")
        print(f"night: API calls {calls}, throttled {counters.get('throttled', 0)} (want 0); "
              f"{len(self.accepted)} accepted, {sum(len(v) for v in self.churn.values())} departures and returns")


if __name__ == "__main__":
    sys.exit(main())
