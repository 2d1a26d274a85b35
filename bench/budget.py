"""`python -m bench.budget`: N processes share one account's request budget through Table Storage.

Starts Azurite and the Partner Center simulator (its per-tenant limit, default 600/min) in their
own processes, then N worker processes (default 4) that hammer one account on the background
lane with the budget set to 95 % of the limit, and one more process that makes an on-demand
sync (the customer, then its billing profile) on the interactive lane every few seconds. Time is
not compressed: the simulator's window is a real minute, so the run lasts a few minutes.

Prints the throttled calls (want 0), the most requests the simulator admitted in any minute
against the limit, storage operations per Partner Center call, and the p50/p95 wait of an
on-demand sync's calls for the budget while the reconciliation saturates it.

    python -m bench.budget worker ...   # one worker; started by the above, and by tests/partner_center/budget
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["worker"]:
        return worker(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.budget", description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=4, help="background worker processes")
    parser.add_argument("--limit", type=int, default=600, help="the simulator's per-tenant limit, calls per minute")
    parser.add_argument("--share", type=float, default=0.95, help="the budget as a fraction of the limit")
    parser.add_argument("--seconds", type=float, default=150.0, help="how long the workers hammer")
    parser.add_argument("--threads", type=int, default=4, help="threads per background worker")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per Partner Center call")
    parser.add_argument("--interactive-every", type=float, default=2.0,
                        help="seconds between two on-demand syncs (0: none)")
    args = parser.parse_args(argv)

    from bench.__main__ import _Simulator
    from devstack.local.azurite import Azurite

    budget = math.floor(args.limit * args.share)
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as state_dir, Azurite() as azurite, \
            _Simulator(50, args.latency, args.limit, state_dir) as sim:
        env = {**os.environ, **sim.settings, "SYNC_STORAGE_CONNECTION": azurite.connection_string,
               "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": str(budget)}
        print(f"bench.budget: {args.processes} processes x {args.threads} threads on one account for "
              f"{args.seconds:.0f} s; simulator limit {args.limit}/min per tenant, budget {budget}/min "
              f"({args.share:.0%}), latency {args.latency * 1000:.0f} ms; an on-demand sync every "
              f"{args.interactive_every:g} s on the interactive lane")
        import requests

        requests.delete(f"{sim.url}/_simulator/counters", verify=sim.ca_path, timeout=10)
        results = run_workers(env, processes=args.processes, seconds=args.seconds, threads=args.threads,
                              interactive_every=args.interactive_every)
        served = requests.get(f"{sim.url}/_simulator/counters", verify=sim.ca_path, timeout=10).json()
        peak = requests.get(f"{sim.url}/_simulator/peak-requests", verify=sim.ca_path, timeout=10).json()
        times = [entry["time"] for entry in
                 requests.get(f"{sim.url}/_simulator/request-log", verify=sim.ca_path, timeout=30).json()]
        report(results, throttled=served["throttled"], peak=peak["peakRequests"], limit=args.limit, budget=budget,
               span=max(times) - min(times) if times else 0.0)
    return 0


def run_workers(env: dict, *, processes: int, seconds: float, threads: int = 4, interactive_every: float = 0.0,
                incremental_every: float = 0.0, account: str = "bench", table_prefix: str = "",
                extra: dict | None = None, during=None, extra_args: list[str] | None = None) -> list[dict]:
    """Start the workers, let them all begin at the same moment, and return what each printed.

    ``incremental_every`` > 0 adds a process that makes an incremental run's calls (first in line on
    the background lane) that often. ``during(start_at)``, when given, runs in this process while the workers do.
    """
    roles = [("background", 0.0)] * processes + [(lane, every) for lane, every in
                                                 (("interactive", interactive_every), ("incremental", incremental_every))
                                                 if every > 0]
    command = [sys.executable, "-m", "bench.budget", "worker", "--account", account, "--seconds", str(seconds),
               "--threads", str(threads), "--table-prefix", table_prefix, *(extra_args or [])]
    env = {**env, **(extra or {})}
    workers = [subprocess.Popen(command + ["--lane", role, "--every", str(every)], cwd=ROOT, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for role, every in roles]
    try:
        for process in workers:
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a budget worker failed to start:\n{process.stderr.read()}")
        start_at = time.time() + 0.5
        for process in workers:
            process.stdin.write(f"{start_at}\n")
            process.stdin.flush()
        if during is not None:
            during(start_at)
        results = []
        for process in workers:
            out, err = process.communicate(timeout=seconds + 120)
            if process.returncode != 0:
                raise RuntimeError(f"a budget worker failed:\n{err}")
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()
                process.wait()


def report(results: list[dict], *, throttled: int, peak: int, limit: int, budget: int, span: float) -> None:
    """Print the figures, one per line."""
    calls = sum(r["calls"] for r in results)
    background = [r for r in results if r["lane"] == "background"]
    interactive = [r for r in results if r["lane"] == "interactive"]
    ops = sum(r["budget"]["storage_operations"] for r in results)
    background_calls = sum(r["calls"] for r in background)
    background_ops = sum(r["budget"]["storage_operations"] for r in background)
    errors = sorted({error for r in results for error in r["errors"]})
    print(f"throttled calls (429 provoked at the simulator): {throttled}; errors seen by the workers: "
          f"{', '.join(errors) or 'none'}")
    print(f"most requests admitted in any minute: {peak} vs limit {limit} (budget {budget})")
    print(f"Partner Center calls: {calls} ({background_calls} background by {len(background)} processes, "
          f"{calls - background_calls} interactive); per background process "
          f"{', '.join(str(r['calls']) for r in background)}; {span:.0f} s from the first call "
          f"to the last")
    print(f"storage operations per Partner Center call: {ops / max(1, calls):.3f} overall ({ops} operations, "
          f"{sum(r['budget']['conflicts'] for r in results)} ETag conflicts); "
          f"background {background_ops / max(1, background_calls):.3f}")
    for result in interactive:
        waits = sorted(result["waits"])
        totals = sorted(result["totals"])
        print(f"on-demand sync during the saturating reconciliation ({len(waits)} syncs, 2 calls each): "
              f"budget wait p50 {percentile(waits, 50) * 1000:.0f} ms, p95 {percentile(waits, 95) * 1000:.0f} ms, "
              f"max {waits[-1] * 1000:.0f} ms; whole sync p95 {percentile(totals, 95) * 1000:.0f} ms")


def percentile(values: list[float], pct: float) -> float:
    """The nearest-rank percentile of sorted ``values``."""
    if not values:
        return float("nan")
    return values[min(len(values) - 1, max(0, math.ceil(pct / 100 * len(values)) - 1))]


# -- the worker ---------------------------------------------------------------------------------

class _TimedLane:
    """A budget lane that adds up, per thread, how long ``acquire`` waited."""

    def __init__(self, lane) -> None:
        self.lane = lane
        self.per_minute = lane.per_minute
        self._local = threading.local()

    def acquire(self, deadline: float | None = None) -> None:
        started = time.monotonic()
        try:
            self.lane.acquire(deadline)
        finally:
            self._local.waited = getattr(self._local, "waited", 0.0) + time.monotonic() - started

    def pause(self, seconds: float) -> None:
        self.lane.pause(seconds)

    def first_in_line(self) -> "_TimedLane":
        first = _TimedLane(self.lane.first_in_line())
        first._local = self._local  # one tally per thread, whichever view it called through
        return first

    def take_waited(self) -> float:
        waited, self._local.waited = getattr(self._local, "waited", 0.0), 0.0
        return waited


def worker(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.budget worker")
    parser.add_argument("--lane", choices=["background", "interactive", "incremental"], required=True,
                        help="incremental: the background lane, first in line, a run of --calls every --every s")
    parser.add_argument("--calls", type=int, default=10, help="incremental: calls per run, one after another")
    parser.add_argument("--account", default="bench")
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--every", type=float, default=2.0, help="interactive: seconds between on-demand syncs")
    parser.add_argument("--table-prefix", default="")
    args = parser.parse_args(argv)

    from shared.partner_center import AppTokenProvider, PartnerCenterClient
    from shared.partner_center.errors import DeadlineExceeded, PartnerCenterError
    from shared.app import App
    from shared.settings import Settings
    from shared.store import TableNames, Tables

    settings = Settings.from_env()
    account = settings.accounts[0]
    names = TableNames().with_prefix(args.table_prefix) if args.table_prefix else TableNames()
    wired = App(settings)
    tables = Tables(wired.storage, names)
    lane_name = "interactive" if args.lane == "interactive" else "background"
    lane = wired.budgets.lane(tables.client(names.request_budget), args.account, wired.budget_config, lane=lane_name)
    timed = _TimedLane(lane)
    tokens = AppTokenProvider(settings.authority_url, account.tenant_id, account.client_id,
                                client_secret=account.client_secret(settings.environ), cloud=settings.cloud)
    tokens.token()  # Entra, not Partner Center: outside the budget and the measurement
    client = PartnerCenterClient(settings.api_url, tokens, timed, pool_size=max(4, args.threads * 2))
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    time.sleep(max(0.0, start_at - time.time()))
    until = start_at + args.seconds
    # No call starts after the run: a slice booked for later ends in DeadlineExceeded instead.
    client.deadline = time.monotonic() + (until - time.time())
    errors: list[str] = []
    waits: list[float] = []
    totals: list[float] = []
    customers = [c.tenant_id for c in client.iter_customers()]

    def hammer(offset: int) -> None:
        index = offset
        while time.time() < until:
            try:
                client.get_billing_profile(customers[index % len(customers)])
            except DeadlineExceeded:
                return
            except PartnerCenterError as exc:
                errors.append(type(exc).__name__)
            index += args.threads

    if args.lane == "incremental":
        # Like an incremental run: list pages one after another, first in line; each call's wait counts.
        with client.first_in_line():
            index = 0
            while time.time() < until:
                started = time.monotonic()
                try:
                    for _ in range(args.calls):
                        timed.take_waited()
                        client.get_customer(customers[index % len(customers)])
                        waits.append(timed.take_waited())
                        index += 1
                except DeadlineExceeded:
                    break
                except PartnerCenterError as exc:
                    errors.append(type(exc).__name__)
                totals.append(time.monotonic() - started)
                time.sleep(max(0.0, min(args.every, until - time.time())))
    elif args.lane == "background":
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(args.threads)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    else:
        index = 0
        while time.time() < until:
            tenant = customers[index % len(customers)]
            timed.take_waited()
            started = time.monotonic()
            try:
                client.get_customer(tenant)
                client.get_billing_profile(tenant)
            except DeadlineExceeded:
                break
            except PartnerCenterError as exc:
                errors.append(type(exc).__name__)
            totals.append(time.monotonic() - started)
            waits.append(timed.take_waited())
            index += 1
            time.sleep(max(0.0, min(args.every, until - time.time())))
    budget = lane.budget
    print(json.dumps({
        "lane": args.lane,
        "pid": os.getpid(),
        "calls": client.stats.calls,
        "throttled": client.stats.throttled,
        "errors": errors,
        "waits": waits,
        "totals": totals,
        "budget": vars(budget.stats),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
