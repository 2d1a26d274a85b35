"""`python -m bench.pace`: does the shared budget let a run go at the budget's pace, and a run
someone waits on go first across instances?

Starts Azurite and the Partner Center simulator (latency 50 ms) in their own processes, then:

1. ``full``: a real ``python -m shared sync full`` of N customers (default 1,500) with the budget
   at 95 % of the simulator's limit (1,140 of 1,200 calls a minute) and nobody else calling.
   Prints its wall time against the budget's pace (its calls / the budget), the most calls in any
   minute and the throttled calls.
2. ``first``: two processes on one account, as two instances: a walk (16 threads fetching billing
   profiles on the background lane, as fast as the budget lets them) and an incremental run (100
   calls one after another, as many as a 50,000-customer account's list pages, first in line on
   the background lane, every 20 s, so that each run finds the walk using the whole budget). Prints the incremental run's longest wait for a call,
   and its p95.

Time is not compressed: the simulator's window is a real minute.
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
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "pace"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.pace", description=__doc__.splitlines()[0])
    parser.add_argument("part", nargs="?", choices=["full", "first", "both"], default="both")
    parser.add_argument("--customers", type=int, default=1500)
    parser.add_argument("--limit", type=int, default=1200, help="the simulator's per-tenant limit, calls a minute")
    parser.add_argument("--budget", type=int, default=1140, help="PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--seconds", type=float, default=150.0, help="first: how long the walk runs")
    parser.add_argument("--every", type=float, default=20.0,
                        help="first: seconds between two incremental runs (more than a slice's 10 s: each "
                             "run arrives while the walk has the whole budget)")
    parser.add_argument("--calls", type=int, default=100,
                        help="first: calls per incremental run (at 50,000 customers: 100 list pages)")
    parser.add_argument("--log", help="full: write the simulator's request log (JSON) here")
    args = parser.parse_args(argv)

    from bench.__main__ import _Simulator
    from devstack.local.azurite import Azurite
    import requests

    with tempfile.TemporaryDirectory(prefix="bench-pace-") as state_dir, Azurite() as azurite, \
            _Simulator(args.customers, args.latency, args.limit, state_dir) as sim:
        env = {**os.environ, **sim.settings, "SYNC_STORAGE_CONNECTION": azurite.connection_string,
               "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT, "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": str(args.budget)}

        def control(path: str, method: str = "GET"):
            answer = requests.request(method, f"{sim.url}/_simulator/{path}", verify=sim.ca_path, timeout=30)
            return answer.json() if answer.content else None

        print(f"bench.pace: simulator limit {args.limit}/min per tenant, budget {args.budget}/min, "
              f"latency {args.latency * 1000:.0f} ms")
        if args.part in ("full", "both"):
            control("counters", "DELETE")
            started = time.monotonic()
            done = subprocess.run([sys.executable, "-m", "shared", "sync", "full", "--json"], cwd=ROOT, env=env,
                                  capture_output=True, text=True)
            wall = time.monotonic() - started
            if done.returncode != 0:
                raise SystemExit(f"the full run failed:\n{done.stderr}")
            run = json.loads(done.stdout)[0]
            outcome = run["outcome"]
            took = (datetime.fromisoformat(run["endedAt"]) - datetime.fromisoformat(run["startedAt"])).total_seconds()
            fallbacks = done.stderr.count("storage unavailable")
            log = [e for e in control("request-log") if e["endpoint"] not in ("token", "openid_configuration", "jwks")]
            if args.log:
                Path(args.log).write_text(json.dumps(log))
            calls = len(log)
            first, last = min(e["time"] for e in log), max(e["time"] for e in log)
            span = last - first
            # The simulator logs on the same monotonic clock as this process (one machine).
            before, after = first - started, started + wall - last
            pace = calls * 60.0 / args.budget
            print(f"full: {args.customers} customers, outcome {outcome}, {calls} Partner Center calls; "
                  f"throttled {control('counters')['throttled']}; most calls in any minute "
                  f"{control('peak-requests')['peakRequests']} (budget {args.budget})")
            print(f"full: the run {took:.1f} s, first call to last {span:.1f} s, the process {wall:.1f} s; the "
                  f"budget's pace {pace:.1f} s ({calls} calls at {args.budget}/min): ratio {took / pace:.2f} (run), "
                  f"{span / pace:.2f} (calls), {wall / pace:.2f} (process); the process's own time {before:.1f} s "
                  f"before the first call, {after:.1f} s after the last; the budget's storage unavailable "
                  f"{fallbacks} times")
        if args.part in ("first", "both"):
            from bench.budget import percentile, run_workers

            control("counters", "DELETE")
            results = run_workers(env, processes=1, seconds=args.seconds, threads=16, incremental_every=args.every, extra_args=["--calls", str(args.calls)],
                                  account=ACCOUNT, table_prefix="p" + uuid.uuid4().hex[:12])
            walk = next(r for r in results if r["lane"] == "background")
            run = next(r for r in results if r["lane"] == "incremental")
            waits = sorted(run["waits"])
            print(f"first: a walk (16 threads) and an incremental run ({args.calls} calls every {args.every:g} s) in two processes "
                  f"for {args.seconds:.0f} s; walk calls {walk['calls']}, incremental calls {run['calls']}; "
                  f"throttled {control('counters')['throttled']}; most calls in any minute "
                  f"{control('peak-requests')['peakRequests']} (budget {args.budget})")
            print(f"first: the incremental run's wait for a call: p50 {percentile(waits, 50) * 1000:.0f} ms, "
                  f"p95 {percentile(waits, 95) * 1000:.0f} ms, longest {waits[-1] * 1000:.0f} ms; "
                  f"errors {sorted(set(walk['errors'] + run['errors'])) or 'none'}")
            slowest = sorted(range(len(run["waits"])), key=run["waits"].__getitem__)[-3:]
            print(f"first: its slowest calls (run, call in the run): "
                  f"{', '.join(f'{i // args.calls}, {i % args.calls}' for i in slowest)}; its budget's claims "
                  f"{run['budget']['claims']}, storage operations {run['budget']['storage_operations']}, "
                  f"storage unavailable {run['budget']['storage_failures']} times")
    return 0


if __name__ == "__main__":
    sys.exit(main())
