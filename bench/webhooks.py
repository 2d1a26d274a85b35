"""Webhook delivery-to-organization latency through the local host and its queue trigger.

    python -m bench.webhooks [--events N] [--gap SECONDS] [--customers C]

Starts an in-memory Azurite, the Partner Center simulator (in this process) and, in a process
of its own, the local Functions host (`python -m devstack serve`: the HTTP routes plus the queue
triggers, polling as host.json's ``maxPollingInterval`` allows). Then N customers accept a
reseller relationship one after another, a random pause of up to 2 x gap apart (so the queue
trigger's polling has backed off as on a quiet host); each time, the simulator delivers the
signed event, the receiver stores and queues it, the queue trigger syncs the customer, and the
bench polls the Organizations table. Prints p50/p95/max from acceptance to organization, one
figure per line. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shared import app
from bench.validation import percentile
from devstack.local.azurite import Azurite, free_port

ROOT = Path(__file__).resolve().parents[1]
ACCOUNT = "bench-webhooks"
POLL_SECONDS = 0.01


def start_host(port: int, env: dict) -> subprocess.Popen:
    """`python -m devstack serve` on ``port``; returns once it accepts connections."""
    host = subprocess.Popen([sys.executable, "-m", "devstack", "serve", "--port", str(port)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if host.poll() is not None:
            raise RuntimeError(f"the local host exited with {host.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return host
        except OSError:
            time.sleep(0.1)
    host.kill()
    raise RuntimeError("the local host did not start within 60 s")


def main(argv: list[str] | None = None) -> int:
    from devstack.simulator import PartnerCenterSimulator
    from shared.sync.stores import SyncStores

    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.5, help="mean seconds between two acceptances")
    parser.add_argument("--customers", type=int, default=20, help="customers already in the estate")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as state_dir, Azurite() as azurite, \
            PartnerCenterSimulator(customers=args.customers, seed=args.seed, state_dir=state_dir) as sim:
        env = {**os.environ,
               "AzureWebJobsStorage": azurite.connection_string,
               "SYNC_STORAGE_CONNECTION": azurite.connection_string,
               "PARTNER_CENTER_ACCOUNTS": "",
               "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT,
               "PARTNER_CENTER_API_URL": sim.url,
               "PARTNER_CENTER_AUTHORITY_URL": sim.url,
               "PARTNER_CENTER_TENANT_ID": sim.partner_tenant_id,
               "PARTNER_CENTER_CLIENT_ID": sim.client_id,
               "PARTNER_CENTER_CLIENT_SECRET": sim.client_secret,
               "REQUESTS_CA_BUNDLE": sim.ca_path,
               "WEBHOOK_CERTIFICATE_HOSTS": f"127.0.0.1:{sim.port}",
               "WEBHOOK_TRUST_ANCHORS": sim.ca_path,
               "WEBHOOK_CERTIFICATE_ISSUER": "Partner Center Simulator"}
        os.environ.update(env)
        app.use(None)
        organizations = SyncStores.open(app.current().storage).organizations
        port = free_port()
        host = start_host(port, env)
        try:
            sim.register_webhook(f"http://127.0.0.1:{port}/api/partner-center/events/{ACCOUNT}")
            latencies = []
            for index in range(args.events + 1):
                time.sleep(rng.uniform(0, 2 * args.gap))
                started = time.monotonic()
                tenant = sim.accept_relationship(company_name=f"Bench Customer {index}")
                while organizations.get(ACCOUNT, tenant) is None:
                    if time.monotonic() - started > 60:
                        raise RuntimeError(f"customer {tenant} was not an organization within 60 s")
                    time.sleep(POLL_SECONDS)
                if index:  # the first one warms up the host (token, clients, tables)
                    latencies.append(time.monotonic() - started)
            refused = [d.status for d in sim.webhook_deliveries() if d.status != 200]
        finally:
            host.terminate()
            host.wait(30)
    print(f"events: {len(latencies)} (mean gap {args.gap:.2f} s), deliveries not answered 200: {len(refused)}")
    print(f"delivery-to-organization p50: {percentile(latencies, 0.50):.2f} s")
    print(f"delivery-to-organization p95: {percentile(latencies, 0.95):.2f} s")
    print(f"delivery-to-organization max: {max(latencies):.2f} s")
    return 0 if not refused else 1


if __name__ == "__main__":
    raise SystemExit(main())
