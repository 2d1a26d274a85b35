"""The on-demand limit under a loop: instances syncing random customers as fast as they can.

    python -m bench.on_demand [--workers W] [--seconds S] [--limit L]

Starts an in-memory Azurite and the Partner Center simulator, then W worker processes (each its
own App: other clients, as another instance has) that call the registered ``sync_customer``
function as a signed-in operator in a loop for S seconds, each with a random tenant id: the abuse
issue #21 describes. Prints, per minute window, the syncs accepted (at most L,
``SYNC_CUSTOMER_LIMIT_PER_MINUTE``) and refused (429), the Partner Center calls they cost, and the
time a refusal and an accepted call take. Not a test: the figures depend on the machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections import Counter

ACCOUNT = "bench-on-demand"


def worker(seconds: float, results) -> None:
    import azure.functions as func

    from devstack.local.host import call_http
    from shared.functions.principal import OPERATOR, encode

    headers = encode("bench@example.com", str(uuid.uuid4()), [OPERATOR])
    found = []
    deadline = time.time() + seconds
    while time.time() < deadline:
        tenant = str(uuid.uuid4())
        request = func.HttpRequest("POST", f"http://localhost/api/ops/accounts/{ACCOUNT}/organizations/{tenant}/sync",
                                   headers=headers, body=b"",
                                   route_params={"accountId": ACCOUNT, "customerTenantId": tenant})
        started = time.time()
        status = call_http("sync_customer", request).status_code
        found.append((started, time.time() - started, status))
    results.put(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.on_demand", description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=65.0)
    parser.add_argument("--limit", type=int, default=10)
    args = parser.parse_args(argv)

    from devstack.local.azurite import Azurite
    from devstack.simulator import PartnerCenterSimulator

    with tempfile.TemporaryDirectory(prefix="bench-on-demand-") as state_dir, Azurite() as azurite, \
            PartnerCenterSimulator(customers=10, seed=7, state_dir=state_dir) as sim:
        os.environ.update({
            "AzureWebJobsStorage": azurite.connection_string, "SYNC_STORAGE_CONNECTION": azurite.connection_string,
            "PARTNER_CENTER_API_URL": sim.url, "PARTNER_CENTER_AUTHORITY_URL": sim.url,
            "PARTNER_CENTER_TENANT_ID": sim.partner_tenant_id, "PARTNER_CENTER_CLIENT_ID": sim.client_id,
            "PARTNER_CENTER_CLIENT_SECRET": sim.client_secret, "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT,
            "REQUESTS_CA_BUNDLE": sim.ca_path, "WEBSITE_AUTH_ENABLED": "True",
            "SYNC_CUSTOMER_LIMIT_PER_MINUTE": str(args.limit),
        })
        sim.reset_counters()
        spawn = multiprocessing.get_context("spawn")
        results = spawn.Queue()
        workers = [spawn.Process(target=worker, args=(args.seconds, results)) for _ in range(args.workers)]
        for process in workers:
            process.start()
        calls = [call for _ in workers for call in results.get(timeout=args.seconds + 120)]
        for process in workers:
            process.join(30)
        partner_center = {name: count for name, count in sim.counters().items() if count}

    windows: dict[int, Counter] = {}
    for started, _, status in calls:
        windows.setdefault(int(started // 60), Counter())[status] += 1
    accepted = [c for c in calls if c[2] != 429]
    refused = [c for c in calls if c[2] == 429]
    print(f"{args.workers} instances x {args.seconds:.0f} s, limit {args.limit}/min per account: "
          f"{len(calls)} requests, {len(accepted)} went to Partner Center, {len(refused)} refused 429")
    for window, counts in sorted(windows.items()):
        passed = sum(n for status, n in counts.items() if status != 429)
        print(f"  window {time.strftime('%H:%M', time.gmtime(window * 60))} UTC: {passed} accepted "
              f"(answers {dict(sorted(counts.items()))}), {counts[429]} refused")
    print(f"  Partner Center calls: {partner_center or 'none'}")
    for name, group in (("refused (429)", refused), ("accepted", accepted)):
        if group:
            times = sorted(seconds * 1000 for _, seconds, _ in group)
            print(f"  {name}: median {statistics.median(times):.1f} ms, p95 {times[int(len(times) * 0.95) - 1]:.1f} ms")
    worst = max((sum(n for s, n in c.items() if s != 429) for c in windows.values()), default=0)
    print(f"  most accepted in one window: {worst} (limit {args.limit})")
    return 0 if worst <= args.limit else 1


if __name__ == "__main__":
    raise SystemExit(main())
