"""`python -m bench` (or `make bench`): the sync's figures against the request budget.

Starts Azurite and the Partner Center simulator (in their own processes, with a configured
latency and per-tenant limit), then runs, each in a fresh process:

1. a full reconciliation of N customers into an empty table,
2. the same again with nothing changed in Partner Center (must write nothing),
3. an incremental run with nothing changed,
4. a naive baseline: sequential list → per-customer profile → per-entity upsert (on a sample:
   it is strictly sequential, so its time scales linearly).

and prints one line per figure: API calls against the minimum, wall time against the bound
max(N/R, N·L/concurrency), table transactions and entities written, peak RSS, and the speed-up
over the baseline.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from devstack.local.azurite import Azurite, free_port

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per Partner Center call")
    parser.add_argument("--budget", type=int, default=6000, help="request budget, calls per minute")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--baseline-sample", type=int, default=500,
                        help="customers the naive baseline syncs; it is sequential, so its time scales "
                             "linearly to N (0 skips it)")
    parser.add_argument("--pause", type=float, default=61.0,
                        help="seconds between the two full runs, so the second starts with a fresh minute "
                             "of Partner Center's budget, as the next nightly run would")
    args = parser.parse_args(argv)
    n, latency, budget = args.customers, args.latency, args.budget

    with tempfile.TemporaryDirectory(prefix="bench-") as state_dir, Azurite() as azurite, \
            _Simulator(n, latency, budget, state_dir) as sim:
        env = {**os.environ, **sim.settings, "SYNC_STORAGE_CONNECTION": azurite.connection_string}
        print(f"bench: N={n} customers, latency {latency * 1000:.0f} ms, budget {budget}/min, "
              f"concurrency {args.concurrency}, page size {args.page_size}")
        common = ["--concurrency", str(args.concurrency), "--budget", str(budget), "--page-size", str(args.page_size)]
        pages = math.ceil(n / args.page_size)
        bound = max(n / budget * 60, n * latency / args.concurrency)

        full = _phase(sim, env, ["full", "--account", "bench", *common])
        _report("full", full, minimum=pages + n, bound=bound)
        time.sleep(args.pause)
        again = _phase(sim, env, ["full", "--account", "bench", *common])
        _report("full unchanged", again, minimum=pages + n, bound=bound)
        incremental = _phase(sim, env, ["incremental", "--account", "bench", *common])
        # The activity log is read by whole days: more pages when the days hold more records.
        _report("incremental unchanged", incremental, minimum=pages + 1, bound=None)
        print(f"incremental unchanged: minimum counts one activity-log page; it reads every record of the "
              f"days its window touches ({incremental['api_calls'].get('audit_records', 0)} pages here)")
        if args.baseline_sample:
            sample = min(args.baseline_sample, n)
            naive = _phase(sim, env, ["naive", "--account", "naive", "--limit", str(sample), *common])
            sample_pages = math.ceil(sample / args.page_size)
            _report(f"naive baseline ({sample} customers)", naive, minimum=sample_pages + sample, bound=None)
            scaled = naive["wall_seconds"] * n / sample
            print(f"naive baseline: {naive['wall_seconds']:.1f} s for {sample} customers, "
                  f"{scaled:.0f} s scaled to {n}")
            print(f"speed-up over naive baseline: {scaled / full['wall_seconds']:.1f}x")
    return 0


def _phase(sim: "_Simulator", env: dict, args: list[str]) -> dict:
    requests.delete(f"{sim.url}/_simulator/counters", verify=sim.ca_path, timeout=10)
    done = subprocess.run([sys.executable, "-m", "bench.phase", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"phase {args[0]} failed:\n{done.stderr}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["served"] = requests.get(f"{sim.url}/_simulator/counters", verify=sim.ca_path, timeout=10).json()
    figures["peak_per_minute"] = requests.get(f"{sim.url}/_simulator/peak-requests", verify=sim.ca_path,
                                              timeout=10).json()
    return figures


def _report(name: str, figures: dict, *, minimum: int, bound: float | None) -> None:
    calls = figures["api_calls"]
    api_calls = sum(calls.values())
    served = figures["served"]
    print(f"{name}: outcome {figures['outcome']}")
    print(f"{name}: API calls {api_calls} vs minimum {minimum} (ratio {api_calls / minimum:.3f}; "
          f"{', '.join(f'{k} {v}' for k, v in sorted(calls.items()))}; token calls {served.get('token', 0)}; "
          f"throttled {served.get('throttled', 0)})")
    print(f"{name}: peak requests in any minute at the simulator {figures['peak_per_minute']['peakRequests']}")
    if bound is not None:
        print(f"{name}: wall {figures['wall_seconds']:.1f} s vs bound {bound:.1f} s "
              f"(ratio {figures['wall_seconds'] / bound:.2f})")
    else:
        print(f"{name}: wall {figures['wall_seconds']:.1f} s")
    print(f"{name}: table transactions {figures['transactions']}, entities written {figures['entities']}")
    print(f"{name}: peak RSS {figures['peak_rss_mb']:.0f} MB")


class _Simulator:
    """The simulator as a separate process, so it does not share the phases' memory or CPU."""

    def __init__(self, customers: int, latency: float, budget: int, state_dir: str) -> None:
        self.port = free_port()
        self.command = [sys.executable, "-m", "devstack", "simulator", "--port", str(self.port),
                        "--customers", str(customers), "--latency", str(latency),
                        "--requests-per-minute", str(budget), "--state-dir", state_dir]
        self.settings: dict[str, str] = {}
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.settings["PARTNER_CENTER_API_URL"]

    @property
    def ca_path(self) -> str:
        return self.settings["REQUESTS_CA_BUNDLE"]

    def __enter__(self) -> "_Simulator":
        self.process = subprocess.Popen(self.command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("the simulator exited before it was ready")
            if "=" in line and line.split("=", 1)[0].isupper():
                key, value = line.strip().split("=", 1)
                self.settings[key] = value
            if line.startswith("Scenario controls"):
                return self
        raise SystemExit("the simulator did not start in time")

    def __exit__(self, *exc: object) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
