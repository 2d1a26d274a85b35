"""`python -m bench.crash`: what a crashed instance costs its account, with the default lease.

Starts Azurite and the Partner Center simulator, starts a real `python -m shared sync full`, kills
it with SIGKILL in the middle of its walk, and at once starts the next one, as the next queued
unit or timer would. Prints the seconds from the kill until the next run holds the account (its
run-log row appears) and until it has finished the walk, against `SYNC_LEASE_SECONDS`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from azure.core.exceptions import ResourceNotFoundError

from bench.__main__ import _Simulator
from devstack.local.azurite import Azurite
from shared.store import TableNames, Tables

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "crash"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crash", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--lease-seconds", type=int, default=60, help="SYNC_LEASE_SECONDS (the default is 60)")
    parser.add_argument("--kill-after", type=float, default=8.0, help="seconds into the walk")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="crash-") as state_dir, Azurite() as azurite, \
            _Simulator(args.customers, args.latency, 6000, state_dir) as sim:
        env = {**os.environ, **sim.settings, "SYNC_STORAGE_CONNECTION": azurite.connection_string,
               "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT, "SYNC_LEASE_SECONDS": str(args.lease_seconds),
               "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": "6000"}
        tables = Tables(azurite.connection_string, TableNames())
        first = _sync(env)
        _wait(lambda: _runs(tables), timeout=60)
        time.sleep(args.kill_after)
        known = {r["RowKey"] for r in _runs(tables)}
        first.send_signal(signal.SIGKILL)
        first.wait()
        killed = time.monotonic()
        second = _sync(env)
        _wait(lambda: [r for r in _runs(tables) if r["RowKey"] not in known], timeout=args.lease_seconds + 120)
        proceeds = time.monotonic() - killed
        out, err = second.communicate(timeout=1800)
        finished = time.monotonic() - killed
        outcomes = sorted(r["Outcome"] for r in _runs(tables))
        print(f"crash: N={args.customers}, SIGKILL {args.kill_after:g} s into the walk, lease {args.lease_seconds} s")
        print(f"crash: next run held the account {proceeds:.1f} s after the kill "
              f"(ratio to the lease {proceeds / args.lease_seconds:.2f})")
        print(f"crash: next run finished the walk {finished:.1f} s after the kill (exit {second.returncode}); "
              f"run log outcomes {outcomes}")
    return 0 if second.returncode == 0 else 1


def _sync(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shared", "sync", "full", "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _runs(tables: Tables) -> list[dict]:
    try:
        return list(tables.runs.query_entities("PartitionKey eq @pk", parameters={"pk": ACCOUNT}))
    except ResourceNotFoundError:
        return []


def _wait(found, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = found()
        if result:
            return result
        time.sleep(0.05)
    raise SystemExit(f"gave up after {timeout} s")


if __name__ == "__main__":
    sys.exit(main())
