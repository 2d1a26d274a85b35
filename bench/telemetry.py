"""`python -m bench.telemetry`: what telemetry costs a full run.

Starts Azurite, the Partner Center simulator (low latency) and a loopback OTLP/HTTP sink, then
runs full reconciliations of N customers through ``run_accounts`` (as the timers do), each in a
fresh process and into tables of its own, alternately with telemetry off (nothing
configured) and on (``shared.telemetry.configure()`` exporting spans, metrics and logs over OTLP
to the sink), and prints the wall times and the overhead ratio (target: under 5 %).

    python -m bench.telemetry [--customers 2000] [--latency 0.005] [--rounds 3]
    python -m bench.telemetry --phase on|off --account ID    (one run; used by the above)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from shared import app
from shared.app import App
from bench.__main__ import _Simulator
from devstack.local.azurite import Azurite

ROOT = Path(__file__).resolve().parents[1]
BUDGET = 60_000  # calls per minute: high enough that the budget never sets the pace here


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.telemetry", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.005, help="seconds per Partner Center call")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="off/on pairs; the medians are compared")
    parser.add_argument("--phase", choices=["on", "off"], help=argparse.SUPPRESS)
    parser.add_argument("--account", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        return _run_phase(args.phase, args.account)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # the sink's request lines
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as state_dir, Azurite() as azurite, \
            _Simulator(args.customers, args.latency, BUDGET, state_dir) as sim, _OtlpSink() as sink:
        env = {key: value for key, value in os.environ.items()
               if not key.startswith(("OTEL_", "APPLICATIONINSIGHTS_"))}
        env.update(sim.settings)
        env.update({"SYNC_STORAGE_CONNECTION": azurite.connection_string, "PARTNER_CENTER_ACCOUNTS": "",
                    "SYNC_CONCURRENCY": str(args.concurrency),
                    "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": str(BUDGET)})
        print(f"bench.telemetry: N={args.customers} customers, latency {args.latency * 1000:.0f} ms, "
              f"concurrency {args.concurrency}, {args.rounds} rounds of off/on")
        walls: dict[str, list[float]] = {"off": [], "on": []}
        cpus: dict[str, list[float]] = {"off": [], "on": []}
        for round_number in range(args.rounds):
            # Alternate which goes first, so neither always meets a warmer Azurite.
            order = ("off", "on") if round_number % 2 == 0 else ("on", "off")
            for phase in order:
                phase_env = dict(env)
                if phase == "on":
                    phase_env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.url
                figures = _phase(phase, f"tele-{phase}-{round_number}", phase_env)
                calls = figures["api_calls"]
                walls[phase].append(figures["wall_seconds"])
                cpus[phase].append(figures["cpu_seconds"])
                flush = f", flush {figures['flush_seconds']:.2f} s" if phase == "on" else ""
                print(f"round {round_number + 1} telemetry {phase}: {figures['outcome']}, "
                      f"{figures['created']} created, {figures['api_calls']} calls, "
                      f"{figures['wall_seconds']:.2f} s (CPU {figures['cpu_seconds']:.2f} s){flush}")
        off, on = statistics.median(walls["off"]), statistics.median(walls["on"])
        print(f"exported to the OTLP sink: {dict(sink.requests)} requests, {sink.bytes / 1024:.0f} KiB")
        print(f"full run wall time, median: off {off:.2f} s, on {on:.2f} s; "
              f"overhead {on / off:.3f}x ({(on / off - 1) * 100:+.1f} %; target under 5 %)")
        cpu_off, cpu_on = statistics.median(cpus["off"]), statistics.median(cpus["on"])
        # On a shared machine wall time also measures the neighbours: the CPU the sync used does not.
        print(f"sync process CPU, median: off {cpu_off:.2f} s, on {cpu_on:.2f} s ({(cpu_on / cpu_off - 1) * 100:+.1f} %)")
        # What telemetry adds per Partner Center call (its span, the table spans around it, export):
        # the figure that carries over to other latencies, where the wall-time share does not.
        print(f"sync process CPU per Partner Center call: off {cpu_off / calls * 1000:.2f} ms, "
              f"on {cpu_on / calls * 1000:.2f} ms ({(cpu_on - cpu_off) / calls * 1000:+.2f} ms)")
    return 0


def _phase(phase: str, account: str, env: dict) -> dict:
    env = {**env, "PARTNER_CENTER_ACCOUNT_ID": account}
    done = subprocess.run([sys.executable, "-m", "bench.telemetry", "--phase", phase, "--account", account],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _run_phase(phase: str, account: str) -> int:
    from shared import telemetry
    from shared.store import TableNames
    from shared.sync.stores import SyncStores

    logging.getLogger().setLevel(logging.INFO)  # the runs' INFO lines are exported too, when on
    if phase == "on":
        assert telemetry.configure() == telemetry.setup.OTLP, "OTEL_EXPORTER_OTLP_ENDPOINT is not set"
    settings = app.current().settings
    # Every phase is a first full run into tables of its own, opened before the clock starts. In
    # shared tables each run after the first would find every customer's tenant-index row left by
    # an earlier phase and pay two more table calls per customer than the first did.
    prefix = "b" + "".join(ch for ch in account if ch.isalnum())
    stores = SyncStores.open(app.current().storage, TableNames().with_prefix(prefix),
                             quarantine_after=settings.quarantine_after_failures)
    started, cpu = time.monotonic(), time.process_time()
    (result,) = App(settings, stores=stores).run_accounts("full", account_id=account)
    wall, cpu = time.monotonic() - started, time.process_time() - cpu
    flushed = time.monotonic()
    telemetry.flush()
    print(json.dumps({"phase": phase, "outcome": result.outcome, "created": result.counts.created,
                      "api_calls": result.api_calls, "wall_seconds": wall, "cpu_seconds": cpu,
                      "flush_seconds": time.monotonic() - flushed}))
    return 0 if result.outcome == "succeeded" else 1


class _OtlpSink:
    """Accepts OTLP/HTTP exports on loopback and counts them (an empty 200 is a full success)."""

    def __init__(self, *, keep_bodies: bool = False) -> None:
        self.requests: Counter[str] = Counter()
        self.bytes = 0
        self.bodies: dict[str, list[bytes]] | None = {} if keep_bodies else None
        self._lock = threading.Lock()
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @Request.application
    def _app(self, request: Request) -> Response:
        body = request.get_data()
        signal = request.path.rsplit("/", 1)[-1]
        with self._lock:
            self.requests[signal] += 1
            self.bytes += len(body)
            if self.bodies is not None:
                self.bodies.setdefault(signal, []).append(body)
        return Response(b"", content_type="application/x-protobuf")

    def __enter__(self) -> "_OtlpSink":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


if __name__ == "__main__":
    sys.exit(main())
