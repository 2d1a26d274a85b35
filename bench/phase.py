"""One benchmark phase in a process of its own, so its peak RSS is the sync's alone.

    python -m bench.phase {full,incremental,naive} --account ID --concurrency C --budget R

Reads the storage connection and the Partner Center settings from the environment, prints one
JSON object: wall seconds, API calls by endpoint, table transactions and entities, peak RSS.
"""

from __future__ import annotations

import argparse
import itertools
import json
import resource
import sys
import time
from datetime import datetime, timezone

from shared.app import App
from shared.contacts.mapping import CustomerRecord, organization_fields, primary_contact_from_billing_profile
from shared.partner_center import AppTokenProvider, LocalRequestBudget, PartnerCenterClient
from shared.settings import Settings
from shared.sync.engine import AccountSync, SyncOptions
from shared.sync.stores import SyncStores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["full", "incremental", "naive"])
    parser.add_argument("--account", required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--budget", type=int, default=6000, help="requests per minute")
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--limit", type=int, default=None, help="naive baseline: stop after this many customers")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    account = settings.accounts[0]
    tokens = AppTokenProvider(settings.authority_url, account.tenant_id, account.client_id,
                                client_secret=account.client_secret(settings.environ), cloud=settings.cloud)
    client = PartnerCenterClient(settings.api_url, tokens, LocalRequestBudget(args.budget),
                                 pool_size=args.concurrency * 2)
    stores = SyncStores.open(App(settings).storage)
    started = time.monotonic()
    if args.phase == "naive":
        transactions = entities = naive_full_sync(client, stores, args.account, args.limit)
        outcome = "succeeded"
    else:
        options = SyncOptions(page_size=args.page_size, concurrency=args.concurrency, time_budget_seconds=3600)
        sync = AccountSync(args.account, client, stores, options)
        result = sync.full() if args.phase == "full" else sync.incremental()
        transactions, entities, outcome = result.transactions, result.entities_written, result.outcome
    wall = time.monotonic() - started
    print(json.dumps({
        "phase": args.phase,
        "outcome": outcome,
        "wall_seconds": wall,
        "api_calls": dict(client.stats.by_endpoint),
        "throttled": client.stats.throttled,
        "transactions": transactions,
        "entities": entities,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))
    return 0


def naive_full_sync(client: PartnerCenterClient, stores: SyncStores, account_id: str, limit: int | None) -> int:
    """The obvious implementation: list, then one profile and one upsert per customer, in sequence."""
    table = stores.tables.organizations
    now = datetime.now(timezone.utc)
    writes = 0
    for customer in itertools.islice(client.iter_customers(), limit):
        profile = client.get_billing_profile(customer.tenant_id)
        fields = organization_fields(
            CustomerRecord(customer.tenant_id, customer.company_name, customer.domain,
                           customer.relationship_to_partner, customer.indirect_reseller_id),
            primary_contact_from_billing_profile(profile),
        )
        table.upsert_entity({"PartitionKey": account_id, "RowKey": customer.tenant_id, **fields,
                             "Status": "active", "FirstSyncedAt": now, "LastChangedAt": now})
        writes += 1
    return writes


if __name__ == "__main__":
    sys.exit(main())
