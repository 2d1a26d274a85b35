"""How wall time scales with the number of accounts: sync units run one after another vs in parallel.

    python -m bench.accounts [--accounts 1,2,4,8] [--customers 200] [--latency 0.05]

Starts Azurite and the Partner Center simulator (its own process, a per-call latency and a
per-tenant request limit). For each account count N it adds N fresh partner tenants to the
simulator, configures them as N accounts, puts one full-reconciliation unit per account on the
``sync-units`` queue, and lets worker processes take them through the registered queue function
(the local queue trigger, one unit at a time per worker, as on a host with ``batchSize`` 1):

- sequential: one worker, so the units run one after another (what one long invocation does);
- parallel: N workers, standing in for N Functions instances the runtime scales out to.

Wall time runs from the moment the already started workers are told to go until the queue is
empty. Prints one line per figure. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests

from shared import app
from bench.__main__ import _Simulator
from devstack.local.azurite import Azurite

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.accounts", description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", default="1,2,4,8", help="account counts to measure, comma-separated")
    parser.add_argument("--customers", type=int, default=200, help="customers per account")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per Partner Center call")
    parser.add_argument("--budget", type=int, default=6000, help="request budget per tenant, calls per minute")
    parser.add_argument("--concurrency", type=int, default=8, help="billing profiles fetched at once per run")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return _worker()
    counts = [int(n) for n in args.accounts.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-accounts-") as state_dir, Azurite() as azurite, \
            _Simulator(0, args.latency, args.budget, state_dir) as sim:
        base_env = {
            **os.environ,
            "AzureWebJobsStorage": azurite.connection_string,
            "SYNC_STORAGE_CONNECTION": azurite.connection_string,
            "PARTNER_CENTER_API_URL": sim.url,
            "PARTNER_CENTER_AUTHORITY_URL": sim.url,
            "REQUESTS_CA_BUNDLE": sim.ca_path,
            "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": str(args.budget),
            "SYNC_CONCURRENCY": str(args.concurrency),
            "SYNC_DISPATCH": "queue",
        }
        print(f"bench.accounts: {args.customers} customers per account, latency {args.latency * 1000:.0f} ms, "
              f"budget {args.budget}/min per tenant, concurrency {args.concurrency}; full reconciliation units; "
              f"{os.cpu_count()} CPUs shared by every worker, the simulator and Azurite")
        for n in counts:
            sequential, one_run = _phase(base_env, sim, n, args.customers, workers=1)
            parallel, longest_parallel_run = _phase(base_env, sim, n, args.customers, workers=n)
            print(f"accounts={n:<3d} sequential {sequential:6.2f} s ({sequential / n:4.2f} s per account)  "
                  f"parallel, {n} instance{'s' if n > 1 else ''}: {parallel:6.2f} s  "
                  f"speed-up {sequential / parallel:4.1f}x (ideal {n}x)  "
                  f"longest run {one_run:4.2f} s alone, {longest_parallel_run:4.2f} s in parallel")
    return 0


def _phase(base_env: dict, sim: _Simulator, accounts: int, customers: int, *, workers: int) -> tuple[float, float]:
    """Sync ``accounts`` fresh accounts through the queue with ``workers`` worker processes.

    Returns the wall time and the longest single run (from the run log).
    """
    env = {**base_env, **_fresh_accounts(sim, accounts, customers)}
    processes = [subprocess.Popen([sys.executable, "-m", "bench.accounts", "--worker"], cwd=ROOT, env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
                 for _ in range(workers)]
    try:
        for process in processes:  # each has imported the app and opened its clients
            if process.stdout.readline().strip() != "ready":
                raise SystemExit("a worker did not start")
        _enqueue(env)
        started = time.monotonic()
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        reports = [json.loads(process.stdout.readline()) for process in processes]
        elapsed = time.monotonic() - started
    finally:
        for process in processes:
            process.wait(timeout=600)
    if sum(report["units"] for report in reports) != accounts:
        raise SystemExit(f"expected {accounts} units, the workers took {reports}")
    return elapsed, _check_runs(env, accounts)


def _fresh_accounts(sim: _Simulator, count: int, customers: int) -> dict[str, str]:
    """``count`` new partner tenants with their estates, as PARTNER_CENTER_ACCOUNTS and secret settings."""
    env, entries = {}, []
    for _ in range(count):
        response = requests.post(f"{sim.url}/_simulator/partners", json={"customers": customers,
                                 "seed": uuid.uuid4().int % 10**6}, verify=sim.ca_path, timeout=60)
        response.raise_for_status()
        partner = response.json()
        account = "bench-" + uuid.uuid4().hex[:10]
        setting = account.upper().replace("-", "_") + "_SECRET"
        env[setting] = partner["clientSecret"]
        entries.append({"id": account, "kind": "direct_provider", "tenantId": partner["tenantId"],
                        "clientId": partner["clientId"], "clientSecretSetting": setting})
    env["PARTNER_CENTER_ACCOUNTS"] = json.dumps(entries)
    return env


def _check_runs(env: dict, accounts: int) -> float:
    """Every account's last run succeeded (or the figure means nothing); returns the longest run's seconds."""
    from shared.settings import Settings
    from shared.sync.stores import SyncStores

    settings = Settings.from_env(env)
    runs = SyncStores.open(app.current().storage).runs
    outcomes = [(runs.latest(account.id, limit=1) or [None])[0] for account in settings.accounts]
    succeeded = [run for run in outcomes if run is not None and run.outcome == "succeeded"]
    if len(succeeded) != accounts:
        raise SystemExit(f"expected {accounts} succeeded runs, got {[r.outcome if r else None for r in outcomes]}")
    return max((run.finished_at - run.started_at).total_seconds() for run in succeeded)


def _enqueue(env: dict) -> None:
    from shared.settings import Settings
    from shared.sync.engine import FULL
    from shared.operations.units import UnitQueue, enqueue_units

    settings = Settings.from_env(env)
    enqueue_units(FULL, settings=settings, queue=app.current().unit_queue)


def _worker() -> int:
    """One stand-in instance: the local queue trigger with one unit at a time, until the queue is empty."""
    from dataclasses import replace

    from shared.host_config import queue_options
    from devstack.local.queues import QueueTriggerRunner
        
    app.current().stores  # tables opened before the clock starts, as on a warm instance
    runner = QueueTriggerRunner("process_sync_unit", options=replace(queue_options(), batch_size=1))
    print("ready", flush=True)
    sys.stdin.readline()
    deliveries = runner.drain(timeout=600)
    print(json.dumps({"units": len(deliveries)}), flush=True)
    runner.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
