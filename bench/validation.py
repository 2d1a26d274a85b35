"""Contact-edit validation latency and throughput: the in-process handler against Azurite.

    python -m bench.validation [--organizations N] [--calls M] [--threads T]

Starts an in-memory Azurite, seeds N organizations (a tenth of them under an account that is no
longer configured, which still count), then sends M validation requests without an accountId
through the registered function (real ``azure.functions.HttpRequest`` objects): a third denied
edits, a third no-op edits of known organizations, a third unknown customers. Each edit costs
one tenant-index query plus a point read per account. It measures twice: first as a deployment
older than the index sees it (organizations stored without index rows: a miss scans
Organizations by RowKey), then after the one-off backfill. Prints one figure per line. Not a
test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import azure.functions as func

from shared import app
from shared.contacts.mapping import Contact, CustomerRecord, organization_fields
from devstack.local.azurite import Azurite
from devstack.local.host import call_http
from shared.store.tables import submit_batches

ACCOUNT = "bench-account"
RETIRED_ACCOUNT = "bench-retired-account"  # organizations of an account removed from the settings
CONTACT = Contact(first_name="Ada", last_name="Lovelace", email="ada@contoso.com", phone="+44 20 7946 0000",
                  address_line1="12 Analytical Row", city="London", postal_code="EC1A 1BB", country="GB")


def seed(count: int) -> list[str]:
    """Store ``count`` active organizations (a tenth under the retired account) as a deployment
    older than the tenant index did: rows only, no index rows. Returns their tenant ids."""
    tenants = [str(uuid.uuid4()) for _ in range(count)]
    stores = app.current().stores
    for account, chunk in ((RETIRED_ACCOUNT, tenants[: count // 10]), (ACCOUNT, tenants[count // 10:])):
        operations = [("create", {"PartitionKey": account, "RowKey": t, "Status": "active",
                                  **organization_fields(CustomerRecord(t, f"Company {i}", "", "reseller"), CONTACT)})
                      for i, t in enumerate(chunk)]
        submit_batches(stores.tables.organizations, account, operations)
    return tenants


def requests_for(tenants: list[str], calls: int, rng: random.Random) -> list[bytes]:
    bodies = []
    for i in range(calls):
        kind = i % 3
        if kind == 0:
            edit = {"customerTenantId": rng.choice(tenants), "primaryContact": {"email": f"new{i}@contoso.com"}}
        elif kind == 1:
            edit = {"customerTenantId": rng.choice(tenants), "billingContact": {"city": "London", "email": "ADA@contoso.com"}}
        else:
            edit = {"customerTenantId": str(uuid.uuid4()), "primaryContact": {"city": "Paris"}}
        bodies.append(json.dumps(edit).encode())
    return bodies


def measure(bodies: list[bytes], threads: int) -> tuple[list[float], float]:
    """Latencies of every call, and the wall time of them all."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        latencies = list(pool.map(timed_call, bodies))
    return latencies, time.perf_counter() - started


def report(label: str, latencies: list[float], wall: float) -> None:
    print(f"{label} latency p50: {percentile(latencies, 0.50) * 1000:.2f} ms")
    print(f"{label} latency p95: {percentile(latencies, 0.95) * 1000:.2f} ms")
    print(f"{label} latency p99: {percentile(latencies, 0.99) * 1000:.2f} ms")
    print(f"{label} latency mean: {statistics.fmean(latencies) * 1000:.2f} ms")
    print(f"{label} throughput: {len(latencies) / wall:.0f} calls/s")


def timed_call(body: bytes) -> float:
    request = func.HttpRequest(method="POST", url="http://localhost/api/contacts/validate", headers={},
                               params={}, route_params={}, body=body)
    started = time.perf_counter()
    response = call_http("validate_contact_edit", request)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"validation answered {response.status_code}: {response.get_body()[:200]!r}")
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.validation", description=__doc__.splitlines()[0])
    parser.add_argument("--organizations", type=int, default=2000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--threads", type=int, default=1, help="concurrent callers (1 = sequential)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with Azurite() as azurite:
        os.environ.update({
            "SYNC_STORAGE_CONNECTION": azurite.connection_string,
            "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT,
            "PARTNER_CENTER_TENANT_ID": str(uuid.uuid4()),
            "PARTNER_CENTER_CLIENT_ID": str(uuid.uuid4()),
        })
        os.environ.pop("PARTNER_CENTER_ACCOUNTS", None)
        app.use(None)
        seeding = time.perf_counter()
        tenants = seed(args.organizations)
        seeded = time.perf_counter() - seeding
        bodies = requests_for(tenants, args.calls, random.Random(args.seed))
        for body in bodies[:30]:  # warm up: connection pool, table clients, function index
            timed_call(body)
        # Before the backfill every miss scans Organizations; fewer calls keep that phase short.
        unindexed = measure(bodies[: max(30, args.calls // 10)], args.threads)
        index = app.current().stores.organizations.tenant_index
        backfilling = time.perf_counter()
        backfilled = index.ensure_backfilled()
        backfill_seconds = time.perf_counter() - backfilling
        indexed = measure(bodies, args.threads)
        # For comparison on the same machine and load: edits naming their account (one point read).
        named = [json.dumps({"accountId": ACCOUNT, **json.loads(body)}).encode() for body in bodies]
        baseline = measure(named, args.threads)
    print(f"organizations seeded: {args.organizations} in {seeded:.2f} s (a tenth under an unconfigured account)")
    print(f"calls: {args.calls} ({args.threads} thread{'s' if args.threads > 1 else ''}), no accountId")
    print("unindexed = before the backfill: a miss scans Organizations by RowKey")
    report("unindexed", *unindexed)
    print(f"backfill: {backfilled} index rows in {backfill_seconds:.2f} s")
    report("indexed", *indexed)
    print("with accountId = the same edits naming their account: one point read, no index (for comparison)")
    report("with accountId", *baseline)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
