"""`python -m bench.scale`: what a run costs as the estate grows (walk unit start, unchanged incremental, memory).

For each estate size N (``--customers 5000 50000``) it starts Azurite and the Partner Center
simulator (0 ms a call, no real limit, so the sync's own work shows), seeds yesterday's state
directly (one active organization per listed reseller customer, a watermark, an indexed tenant
index) and runs, each in a fresh process (``bench.scale_phase``):

1. an unchanged incremental run (twice; ``--seed-settled`` seeds the settled list the last
   incremental run leaves, so both trust it): wall time, CPU, peak RSS, table entities read;
2. a walk unit of ``--unit-pages`` pages: its start cost (seconds and table entities read before
   the first list page), entities read per page, peak RSS;
3. with ``--walk-end``, the last unit of a walk whose other pages were walked (seeded): its page
   and the end of the walk, which reads every active organization; peak RSS from the unit's start;
4. with ``--first``, a first full run of N new customers into empty tables: CPU per customer.

Seeded organizations hold placeholder content, so the walk unit rewrites each one it reaches:
that is the same work at every N, and the start cost is what differs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import requests
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.data.tables import TableServiceClient

from bench.__main__ import ROOT, _Simulator
from devstack.local.azurite import Azurite
from shared.contacts.mapping import CONTENT_FIELDS
from shared.store.id_lists import pack_ids
from shared.store.tables import TableNames

ACCOUNT = "scale"
_SYNCED = {"reseller"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[5000, 50000])
    parser.add_argument("--unit-pages", type=int, default=3)
    parser.add_argument("--first", action="store_true", help="also a first full run into empty tables")
    parser.add_argument("--skip-unit", action="store_true")
    parser.add_argument("--seed-settled", action="store_true",
                        help="seed the settled list too, as the last incremental run leaves it (both runs then trust it)")
    parser.add_argument("--walk-end", action="store_true",
                        help="also a walk's last unit: every page but the last walked already")
    args = parser.parse_args(argv)
    for n in args.customers:
        with tempfile.TemporaryDirectory(prefix="scale-") as state_dir, Azurite() as azurite, \
                _Simulator(n, 0.0, 10_000_000, state_dir) as sim:
            env = {**os.environ, **sim.settings, "SYNC_STORAGE_CONNECTION": azurite.connection_string,
                   "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT}
            if args.first:
                first = _phase(env, ["first"])
                print(f"N={n} first full run: {first['created']} created, CPU {first['cpu_seconds']:.1f} s, "
                      f"{first['cpu_seconds'] / max(1, first['created']) * 1000:.2f} ms CPU a customer, "
                      f"wall {first['wall_seconds']:.1f} s, peak RSS {first['peak_rss_mb']:.0f} MB", flush=True)
                _empty(azurite.connection_string)
            started = time.monotonic()
            seeded = _seed(sim, azurite.connection_string, args.seed_settled)
            print(f"N={n}: seeded {seeded} organizations in {time.monotonic() - started:.0f} s", flush=True)
            for _ in range(2):
                inc = _phase(env, ["incremental"])
                print(f"N={n} unchanged incremental: {inc['outcome']}, wall {inc['wall_seconds']:.2f} s "
                      f"(list pages {inc['list_seconds']:.2f} s of it), CPU {inc['cpu_seconds']:.2f} s, "
                      f"peak RSS {inc['peak_rss_mb']:.0f} MB, entities read {inc['entities_read']}, "
                      f"API calls {inc['api_calls']}", flush=True)
            if not args.skip_unit:
                unit = _phase(env, ["unit", "--pages", str(args.unit_pages)])
                print(f"N={n} walk unit: start {unit['start_seconds']:.2f} s and {unit['start_entities']} entities "
                      f"read before the first list page; then {unit['entities_per_page']:.0f} entities read and "
                      f"{unit['seconds_per_page']:.2f} s a page; peak RSS {unit['peak_rss_mb']:.0f} MB", flush=True)
            if args.walk_end:
                end = _phase(env, ["walk-end"])
                print(f"N={n} a walk's last unit (its last page and the walk's end): {end['outcome']}, wall "
                      f"{end['wall_seconds']:.1f} s, CPU {end['cpu_seconds']:.1f} s, peak RSS {end['peak_rss_mb']:.0f} MB, "
                      f"entities read {end['entities_read']}", flush=True)
    return 0


def _phase(env: dict, args: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.scale_phase", *args, "--account", ACCOUNT], cwd=ROOT,
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"phase {args[0]} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _tables(connection: str):
    service = TableServiceClient.from_connection_string(connection)
    return service, TableNames()


def _empty(connection: str) -> None:
    service, _ = _tables(connection)
    for table in service.list_tables():
        service.delete_table(table.name)


def _seed(sim: _Simulator, connection: str, settled: bool) -> int:
    """Yesterday's state as a finished night leaves it, written directly (100 a transaction)."""
    listed = requests.get(f"{sim.url}/_simulator/customers", verify=sim.ca_path, timeout=300).json()
    tenants = [c["id"].lower() for c in listed if c.get("relationshipToPartner", "").lower() in _SYNCED]
    service, names = _tables(connection)
    for name in (names.organizations, names.sync_state, names.tenant_index):
        service.create_table_if_not_exists(name)
    organizations = service.get_table_client(names.organizations)
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    content = {name: "seeded" for name in CONTENT_FIELDS}
    content["IndirectResellerId"] = ""

    def write(chunk: list[str]) -> None:
        operations = [("upsert", {"PartitionKey": ACCOUNT, "RowKey": t, **content, "Status": "active",
                                  "FirstSyncedAt": yesterday, "LastChangedAt": yesterday}) for t in chunk]
        for attempt in range(5):
            try:
                organizations.submit_transaction(operations)
                return
            except (ServiceRequestError, ServiceResponseError):
                time.sleep(1 + attempt)  # a loaded Azurite drops a connection now and then: upserts again
        organizations.submit_transaction(operations)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(write, [tenants[i:i + 100] for i in range(0, len(tenants), 100)]))
    state = service.get_table_client(names.sync_state)
    now = datetime.now(timezone.utc)
    state.upsert_entity({"PartitionKey": ACCOUNT, "RowKey": "watermark", "Value": now})
    state.upsert_entity({"PartitionKey": ACCOUNT, "RowKey": "reconciled-through", "Value": yesterday})
    if settled:
        rows = [("upsert", {"PartitionKey": ACCOUNT, "RowKey": f"listed-a|{n + 1:06d}",
                            **pack_ids(tenants[start:start + 500])})
                for n, start in enumerate(range(0, len(tenants), 500))]
        for start in range(0, len(rows), 50):
            state.submit_transaction(rows[start:start + 50])
        state.upsert_entity({"PartitionKey": ACCOUNT, "RowKey": "listed", "Generation": "listed-a",
                             "Pages": len(rows), "VerifiedAt": now})
    index = service.get_table_client(names.tenant_index)
    # Marked complete in both layouts the code has known: the seeding stands for an indexed estate.
    for row in ("complete", "complete-by-bucket"):
        index.upsert_entity({"PartitionKey": "_index", "RowKey": row, "Organizations": len(tenants)})
    return len(tenants)


if __name__ == "__main__":
    sys.exit(main())
