"""Organization events (docs/events.md): how fast the Platform hears of an acceptance, what events
cost a full run, and a topic outage during a run.

    python -m bench.events [--customers N] [--acceptances A]

1. A webhook acceptance → the event at the stand-in topic: the local host (``python -m devstack
   serve``: receiver, queue trigger, publisher) with the simulator's webhooks; p50/p95/max over A.
2. A full run of N new customers (``python -m shared sync full``, which publishes after its writes
   as the timers do) without events, then with events into another account, ``--pairs`` times
   (on a shared machine one pair is noise): wall and CPU times, the ratio of their medians, and
   the ``created`` events the topic received.
3. The same run into a third account with the topic refusing (503) for 60 s from the run's own
   publishing on; after the outage ``python -m shared events publish`` (what the next timer does):
   every event delivered, none lost, each organization's in version order.

Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from statistics import median

from bench.__main__ import _Simulator
from bench.validation import percentile
from bench.webhooks import POLL_SECONDS, start_host
from devstack.eventgrid import StandInTopic
from devstack.local.azurite import Azurite, free_port
from devstack.local.identity import IdentityEndpoint

ROOT = Path(__file__).resolve().parents[1]
CLIENT_ID = "0f3b9c1a-7e2d-4a66-b0c4-5d1e8f2a9b70"


def event_settings(topic: StandInTopic) -> dict[str, str]:
    return {"PLATFORM_EVENTS__topicEndpointUri": topic.endpoint, "PLATFORM_EVENTS__credential": "managedidentity",
            "PLATFORM_EVENTS__clientId": CLIENT_ID}


def bundle(folder: str, *cas: str) -> str:
    path = Path(folder) / "ca-bundle.pem"
    path.write_text("".join(Path(ca).read_text() for ca in cas))
    return str(path)


def acceptances(count: int, state_dir: str, identity: IdentityEndpoint, topic: StandInTopic) -> list[float]:
    """Seconds from each acceptance to its ``created`` event at the topic."""
    from devstack.simulator import PartnerCenterSimulator

    account = "bench-events-webhook"
    with Azurite() as azurite, PartnerCenterSimulator(customers=5, seed=3, state_dir=state_dir) as sim:
        env = {**os.environ, **identity.environment, **event_settings(topic),
               "AzureWebJobsStorage": azurite.connection_string, "SYNC_STORAGE_CONNECTION": azurite.connection_string,
               "PARTNER_CENTER_ACCOUNTS": "", "PARTNER_CENTER_ACCOUNT_ID": account,
               "PARTNER_CENTER_API_URL": sim.url, "PARTNER_CENTER_AUTHORITY_URL": sim.url,
               "PARTNER_CENTER_TENANT_ID": sim.partner_tenant_id, "PARTNER_CENTER_CLIENT_ID": sim.client_id,
               "PARTNER_CENTER_CLIENT_SECRET": sim.client_secret,
               "REQUESTS_CA_BUNDLE": bundle(state_dir, sim.ca_path, topic.ca_path),
               "WEBHOOK_CERTIFICATE_HOSTS": f"127.0.0.1:{sim.port}", "WEBHOOK_TRUST_ANCHORS": sim.ca_path,
               "WEBHOOK_CERTIFICATE_ISSUER": "Partner Center Simulator"}
        port = free_port()
        host = start_host(port, env)
        latencies = []
        try:
            sim.register_webhook(f"http://127.0.0.1:{port}/api/partner-center/events/{account}")
            for index in range(count + 1):
                time.sleep(0.3)
                started = time.monotonic()
                tenant = sim.accept_relationship(company_name=f"Bench Event {index}")
                subject = f"accounts/{account}/organizations/{tenant}"
                while not any(e["subject"] == subject for e in topic.events()):
                    if time.monotonic() - started > 60:
                        raise RuntimeError(f"no event for {tenant} within 60 s")
                    time.sleep(POLL_SECONDS)
                if index:  # the first warms up the host (tokens, clients, tables)
                    latencies.append(time.monotonic() - started)
        finally:
            host.terminate()
            host.wait(30)
    return latencies


def full_run(env: dict, account: str) -> tuple[float, float]:
    """The run's wall time and its process's CPU time, in seconds."""
    started, before = time.monotonic(), resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "-m", "shared", "sync", "full", "--account", account, "--json"], cwd=ROOT,
                          env={**env, "PARTNER_CENTER_ACCOUNT_ID": account}, capture_output=True, text=True)
    seconds, after = time.monotonic() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise RuntimeError(f"the full run failed: {done.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    counts = json.loads(done.stdout)[0]["counts"]
    print(f"  account {account}: {counts['created']} created in {seconds:.1f} s ({cpu:.1f} s of CPU)")
    return seconds, cpu


def of_account(events: list[dict], account: str) -> list[dict]:
    return [e for e in events if e["source"] == f"/pcsync/accounts/{account}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.events", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--acceptances", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per Partner Center call")
    parser.add_argument("--budget", type=int, default=60000, help="request budget, calls per minute")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds the topic refuses in phase 3")
    parser.add_argument("--pause", type=float, default=5.0, help="seconds between runs")
    parser.add_argument("--pairs", type=int, default=3, help="runs without and with events, alternating")
    args = parser.parse_args(argv)
    n = args.customers
    failures = []
    with tempfile.TemporaryDirectory(prefix="bench-events-") as folder, IdentityEndpoint() as identity, \
            StandInTopic(Path(folder) / "topic") as topic:
        if args.acceptances:
            latencies = acceptances(args.acceptances, str(Path(folder) / "webhook-sim"), identity, topic)
            print(f"acceptance-to-event over {len(latencies)} acceptances: p50 {percentile(latencies, 0.5):.2f} s, "
                  f"p95 {percentile(latencies, 0.95):.2f} s, max {max(latencies):.2f} s")
        with Azurite() as azurite, _Simulator(n, args.latency, args.budget, str(Path(folder) / "sim")) as sim:
            env = {**os.environ, **sim.settings, **identity.environment,
                   "SYNC_STORAGE_CONNECTION": azurite.connection_string, "PARTNER_CENTER_ACCOUNTS": "",
                   "SYNC_TIME_BUDGET_SECONDS": "540", "SYNC_CONCURRENCY": "16", "PARTNER_CENTER_PAGE_SIZE": "500",
                   "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": str(args.budget),
                   "REQUESTS_CA_BUNDLE": bundle(folder, sim.ca_path, topic.ca_path)}
            print(f"full run of {n} new customers (latency {args.latency * 1000:.0f} ms), "
                  f"{args.pairs} pair(s) without and with events, each into a new account:")
            plain, events = [], []
            for pair in range(args.pairs):
                plain.append(full_run(env, f"bench-plain-{pair}"))
                time.sleep(args.pause)
                events.append(full_run({**env, **event_settings(topic)}, f"bench-events-{pair}"))
                time.sleep(args.pause)
                created = of_account(topic.events(), f"bench-events-{pair}")
                print(f"  pair {pair + 1}: {events[-1][0] / plain[-1][0]:.2f}x wall, "
                      f"{events[-1][1] / plain[-1][1]:.2f}x CPU; {len(created)} created events received")
                if len(created) != n:
                    failures.append(f"{len(created)} created events for {n} customers")
            wall = median(e[0] for e in events) / median(p[0] for p in plain)
            cpu = median(e[1] for e in events) / median(p[1] for p in plain)
            print(f"  medians: without events {median(p[0] for p in plain):.1f} s, with events "
                  f"{median(e[0] for e in events):.1f} s: {wall:.2f}x wall; CPU {cpu:.2f}x")

            time.sleep(args.pause)
            # The outage begins when the run's own publishing meets it, right after its writes.
            topic.refuse(503, args.outage, from_next_request=True)
            full_run({**env, **event_settings(topic)}, "bench-outage")
            began = topic.refused_since()
            if began is None:
                failures.append("outage: the run never met the refusing topic")
            else:
                time.sleep(max(0.0, args.outage - (time.monotonic() - began)) + 1)
            published = subprocess.run([sys.executable, "-m", "shared", "events", "publish", "--json"], cwd=ROOT,
                                       env={**env, **event_settings(topic),
                                            "PARTNER_CENTER_ACCOUNT_ID": "bench-outage"},
                                       capture_output=True, text=True)
            delivered = of_account(topic.events(), "bench-outage")
            versions = defaultdict(list)
            for event in delivered:
                versions[event["subject"]].append(event["data"]["version"])
            reordered = sum(1 for v in versions.values() if v != sorted(v))
            refusals = sum(1 for status in topic.received.answers if status == 503)
            print(f"topic outage of {args.outage:.0f} s during a run: {refusals} request(s) refused, then "
                  f"{len(delivered)} events delivered for {n} customers, {len({e['id'] for e in delivered})} distinct, "
                  f"{reordered} organizations out of order (publish exit {published.returncode})")
            if len({e["id"] for e in delivered}) != n or reordered:
                failures.append("outage: events lost or reordered")
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
