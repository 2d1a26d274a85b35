"""`python -m bench.history`: status and an unchanged incremental run with a year of history.

    python -m bench.history [--customers N] [--runs 100000] [--events 20000] [--changes 50000] [--scale S]

For ONE account of N customers (default 1,000) on the Partner Center simulator, synced once with a
full run into each of two Azurites, measures status (``App.status.accounts``), an unchanged
incremental run (``App.run_accounts("incremental")``) and an organization's change history, in wall
time (medians, the two stores' calls taken in turn so the machine's other work weighs on both
alike), and the table requests and entities one status call reads, on the first Azurite (an empty
history) against the second:

1. with a year of history seeded as the stores lay it out (same keys and columns), dated across
   the past 365 days: run rows (SyncRuns, and SyncRunsIndex for the abandoned ones), webhook events
   (WebhookEvents: processed and ignored, a few pending with their WebhookEventsIndex rows, which
   the first incremental run drains) and change entries (OrganizationChanges: each in its run's
   partition and in its organization's history);
2. after ``App.prune`` (default retention: runs and events 90 days, the change log 400, so none of
   the year's change entries go), with its throughput per table; then a second prune of the change
   log alone at 90 days, for that table's throughput.

``--scale`` multiplies the three history sizes. Prints one line per figure and a final JSON line.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import timedelta

from azure.core.pipeline.transport import RequestsTransport

from bench.__main__ import _Simulator
from devstack.local.azurite import Azurite
from shared.app import App
from shared.keys import account_key, composite_key, newest_first_id, utc_now
from shared.settings import Settings
from shared.store.changes import _history_key
from shared.store.runs import _ABANDONED, _COUNT_COLUMNS, RunOutcome
from shared.store.organizations import UPDATE
from shared.store.tables import MAX_BATCH
from shared.sync.engine import Deadline
from shared.webhooks.events import RESELLER_RELATIONSHIP_ACCEPTED, parse_event
from shared.webhooks.store import IGNORED, PENDING, PROCESSED, _mark

ACCOUNT = "history"
print = functools.partial(print, flush=True)  # progress as it happens, also through a pipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=50_000)
    parser.add_argument("--scale", type=float, default=1.0, help="multiplies --runs, --events and --changes")
    args = parser.parse_args(argv)
    sizes = {name: int(getattr(args, name) * args.scale) for name in ("runs", "events", "changes")}
    figures: dict = {"customers": args.customers, **sizes}

    with tempfile.TemporaryDirectory(prefix="bench-history-") as state_dir, Azurite() as empty_storage, \
            Azurite() as storage, _Simulator(args.customers, 0.0, 10_000_000, state_dir) as sim:
        os.environ["REQUESTS_CA_BUNDLE"] = sim.ca_path  # the sync runs in this process

        def app_on(azurite: Azurite, **settings: str) -> App:
            return App(Settings.from_env({
                **sim.settings, "SYNC_STORAGE_CONNECTION": azurite.connection_string,
                "AzureWebJobsStorage": azurite.connection_string, "PARTNER_CENTER_ACCOUNT_ID": ACCOUNT,
                "PARTNER_CENTER_MAX_REQUESTS_PER_MINUTE": "100000", "SYNC_TIME_BUDGET_SECONDS": "480", **settings}))

        empty, app = app_on(empty_storage), app_on(storage)
        for each in (empty, app):
            started = time.monotonic()
            [full] = each.run_accounts("full", account_id=ACCOUNT, deadline=Deadline.starting_now(3600))
            print(f"history: N={args.customers}, full run {full.outcome} in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        seeded = seed(app, **sizes)
        figures["seed_seconds"] = time.monotonic() - started
        print(f"seeded: {seeded} in {figures['seed_seconds']:.1f} s "
              f"({sum(seeded.values()) / figures['seed_seconds']:.0f} rows/s)")
        figures["history"] = measure(empty, app, "a year of history", (empty_storage, storage))
        figures["prune"] = prune(app)
        figures["pruned"] = measure(empty, app, "after the prune", (empty_storage, storage))
        figures["change_log_prune"] = prune(app_on(storage, SYNC_CHANGE_LOG_RETENTION_DAYS="90"),
                                            only="OrganizationChanges")
    print(json.dumps(figures))
    return 0


def measure(empty: App, app: App, label: str, storages: tuple[Azurite, Azurite]) -> dict:
    """Each figure on the empty history and on ``app``'s, taken in turn (so the machine's other work
    weighs on both alike): the table requests and entities of one status call, then medians."""
    figures: dict = {}
    for name, each, azurite in (("empty", empty, storages[0]), ("history", app, storages[1])):
        with counting(azurite.table_service_uri) as read:
            each.status.accounts([ACCOUNT])
        figures[name] = {"status_requests": read["requests"], "status_entities": read["entities"]}
        print(f"{label}: {name}: one status call, {read['requests']} table requests, "
              f"{read['entities']} entities returned")
    tenant = next(app.stores.organizations.list(ACCOUNT, top=1))["RowKey"]
    calls = {
        # A control: a point read of a table the history does not touch.
        "control": (21, lambda each: each.stores.state.get_watermark(ACCOUNT)),
        "status": (7, lambda each: each.status.accounts([ACCOUNT])),
        "incremental": (5, lambda each: each.run_accounts("incremental", account_id=ACCOUNT)),
        "history": (7, lambda each: each.stores.changes.for_organization(ACCOUNT, tenant)),
    }
    for figure, (times, call) in calls.items():
        taken: dict[str, list[float]] = {"empty": [], "history": []}
        for _ in range(times):
            for name, each in (("empty", empty), ("history", app)):
                taken[name].append(timed(lambda: call(each)))
        for name in taken:
            figures[name][f"{figure}_seconds"] = statistics.median(taken[name])
        ratio = figures["history"][f"{figure}_seconds"] / figures["empty"][f"{figure}_seconds"]
        figures[f"{figure}_ratio"] = ratio
        print(f"{label}: {figure} {figures['history'][f'{figure}_seconds'] * 1000:.1f} ms against "
              f"{figures['empty'][f'{figure}_seconds'] * 1000:.1f} ms with an empty history: {ratio:.2f}x "
              f"(medians of {times}, taken in turn)")
    return figures


def timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


@contextmanager
def counting(table_uri: str):
    """Counts the requests to the table service and the entities their answers return (this
    process's azure-core transport, patched while the block runs: not while timing)."""
    read = {"requests": 0, "entities": 0}
    original = RequestsTransport.send

    def send(self, request, **kwargs):
        response = original(self, request, **kwargs)
        if request.url.startswith(table_uri):
            read["requests"] += 1
            if request.method == "GET" and "json" in response.headers.get("content-type", ""):
                body = json.loads(response.text() or "{}")
                read["entities"] += len(body["value"]) if "value" in body else 1
        return response

    RequestsTransport.send = send
    try:
        yield read
    finally:
        RequestsTransport.send = original


def seed(app: App, *, runs: int, events: int, changes: int) -> dict[str, int]:
    """A year of one account's history, written as the stores write it, in transactions of <= 100."""
    tables, pk = app.stores.tables, account_key(ACCOUNT)
    tenants = [e["RowKey"] for e in tables.organizations.query_entities("PartitionKey eq @pk", parameters={"pk": pk},
                                                                      select=["RowKey"])]
    now = utc_now()
    first, last = now - timedelta(days=365), now - timedelta(hours=1)  # older than the runs just made
    run_rows, index_rows, change_rows, history_rows, event_rows, marks = [], [], [], [], [], []
    per_run = min(20, len(tenants))
    change_every = max(1, runs // math.ceil(changes / per_run)) if changes else 0
    for i in range(runs):
        at = first + (last - first) * i / runs
        mode = "full" if i % 288 == 0 else "incremental"
        outcome = RunOutcome.ABANDONED if i % 25_000 == 7 else \
            RunOutcome.PARTIAL if i % 500 == 3 else RunOutcome.SUCCEEDED
        run_id = newest_first_id(at)
        run_rows.append({"PartitionKey": pk, "RowKey": run_id, "Mode": mode, "StartedAt": at, "Outcome": str(outcome),
                         "FinishedAt": at + timedelta(seconds=20), "ApiCalls": 3, "ThrottledCalls": 0, "Error": "",
                         "Notes": "", **dict.fromkeys(_COUNT_COLUMNS.values(), 0),
                         "Unchanged": len(tenants) if mode == "full" else 0})
        if outcome == RunOutcome.ABANDONED:  # and its copy, as RunLog.abandon writes it
            index_rows.append({**run_rows[-1], "RowKey": _ABANDONED + run_id, "RunId": run_id})
        if change_every and i % change_every == 0 and len(change_rows) < changes:
            partition = composite_key(ACCOUNT, run_id)
            for t in range(min(per_run, changes - len(change_rows))):
                tenant = tenants[(i + t) % len(tenants)]
                change_rows.append({"PartitionKey": partition, "RowKey": tenant, "Kind": UPDATE,
                                    "At": at + timedelta(seconds=5),
                                    "Changes": json.dumps({"PrimaryPhone": [f"+1 555 {i:07d}", f"+1 555 {i + 1:07d}"]})})
                history_rows.append({**change_rows[-1], "PartitionKey": pk, "RowKey": _history_key(tenant, run_id)})
    for i in range(events):
        pending = i % 4000 == 0  # a few, received within the last day (the drain takes them)
        at = now - timedelta(minutes=10 + i % 1000) if pending else first + (last - first) * i / events
        tenant = tenants[i % len(tenants)]
        body = json.dumps({"EventName": RESELLER_RELATIONSHIP_ACCEPTED,
                           "ResourceUri": f"https://api.partnercenter.microsoft.com/v1/customers/{tenant}",
                           "ResourceName": "customer", "AuditUri": None,
                           "ResourceChangeUtcDate": at.isoformat()}).encode()
        event = parse_event(body)
        status = PENDING if pending else IGNORED if i % 20 == 1 else PROCESSED
        row = {"PartitionKey": pk, "RowKey": event.key, "EventName": event.event_name,
               "ResourceUri": event.resource_uri, "ResourceName": event.resource_name, "AuditUri": event.audit_uri,
               "ResourceChangeUtcDate": event.resource_change_utc_date, "CustomerTenantId": tenant, "Status": status,
               "Attempts": 0 if status == PENDING else 1, "LastError": "", "ReceivedAt": at,
               "Body": body.decode()}
        if status == PROCESSED:
            row.update(RunId=newest_first_id(at), ProcessedAt=at + timedelta(seconds=2))
        event_rows.append(row)
        if status == PENDING:  # and its index row, as WebhookEventStore.accept writes it
            marks.append(_mark(pk, PENDING, event.key))
    events_table = app.stores.tables.service.get_table_client(app.events.table_name)
    events_index = app.stores.tables.service.get_table_client(app.events.index_table_name)
    written = {}
    for name, table, rows in (("SyncRuns", tables.runs, run_rows), ("SyncRunsIndex", tables.run_index, index_rows),
                              ("WebhookEvents", events_table, event_rows), ("WebhookEventsIndex", events_index, marks),
                              ("OrganizationChanges", tables.changes, change_rows + history_rows)):
        started = time.monotonic()
        write(table, rows)
        written[name] = len(rows)
        print(f"seeded {name}: {len(rows)} rows in {time.monotonic() - started:.1f} s")
    return written


def write(table, rows: list[dict]) -> None:
    """Upsert transactions of at most 100 rows of one partition, 4 at a time (a row seeded twice,
    an event of the same identity, is stored once)."""
    rows = list({(row["PartitionKey"], row["RowKey"]): row for row in rows}.values())
    batches, batch = [], []
    for row in rows:
        if batch and (len(batch) == MAX_BATCH or row["PartitionKey"] != batch[0][1]["PartitionKey"]):
            batches.append(batch)
            batch = []
        batch.append(("upsert", row))
    if batch:
        batches.append(batch)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(table.submit_transaction, batches))


def prune(app: App, only: str | None = None) -> dict:
    """``App.prune`` with an hour's deadline, each table's step timed; prints rows/s per table."""
    seconds: dict[str, float] = {}

    def timing(name: str, step):
        def run(*args, **kwargs):
            started = time.monotonic()
            try:
                return step(*args, **kwargs) if only in (None, name) else (0, True)
            finally:
                seconds[name] = time.monotonic() - started
        return run

    stores = app.stores
    for name, store in (("SyncRuns", stores.runs), ("OrganizationChanges", stores.changes),
                        ("CustomerFailures", stores.failures), ("HeldChanges", stores.held),
                        ("ReconciliationWalk", stores.walk), ("WebhookEvents", app.events)):
        store.prune = timing(name, store.prune)
    started = time.monotonic()
    report = app.prune(account_id=ACCOUNT, deadline=Deadline.starting_now(3600))
    total = time.monotonic() - started
    label = f"prune ({only} at {app.settings.change_log_retention_days} days)" if only else "prune"
    figures = {"seconds": total, "finished": report.finished, "tables": {}}
    for name, deleted in report.totals().items():
        if only in (None, name) and (deleted or seconds.get(name, 0) > 0.05):
            rate = deleted / seconds[name] if seconds.get(name) else 0.0
            figures["tables"][name] = {"deleted": deleted, "seconds": seconds.get(name, 0.0), "rows_per_second": rate}
            print(f"{label}: {name} {deleted} rows deleted in {seconds.get(name, 0):.1f} s ({rate:.0f} rows/s)")
    print(f"{label}: {total:.1f} s in all, finished {report.finished}")
    return figures


if __name__ == "__main__":
    raise SystemExit(main())
