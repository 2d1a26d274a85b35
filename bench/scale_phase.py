"""One phase of `python -m bench.scale` in a process of its own (its peak RSS and CPU are the run's).

    python -m bench.scale_phase {incremental,unit,first} --account ID [--pages P]

Prints one JSON object: wall and CPU seconds, peak RSS, table entities read (every entity the
Azure SDK deserialised), and for ``unit`` the start cost and the cost per page.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import timedelta

import azure.data.tables._models as sdk_models
import azure.data.tables._table_client as sdk_client

from shared.partner_center import AppTokenProvider, LocalRequestBudget, PartnerCenterClient
from shared.keys import newest_first_id, utc_now
from shared.settings import Settings
from shared.sync.engine import AccountSync, Deadline, SyncOptions
from shared.sync.stores import SyncStores

_read = [0]


def _counting(convert):
    def counted(entity):
        _read[0] += 1
        return convert(entity)
    return counted


sdk_models._convert_to_entity = _counting(sdk_models._convert_to_entity)
sdk_client._convert_to_entity = _counting(sdk_client._convert_to_entity)


def _walked_but_the_last_page(client: PartnerCenterClient, stores: SyncStores, account: str) -> None:
    """A walk that listed every page but the last: its seen rows and its checkpoint, as the units
    before the last one leave them. Then this process's peak RSS is reset, so what is measured is
    the last unit (its page and the end of the walk, which reads every active organization)."""
    walk_id = newest_first_id(utc_now())
    link, listed, number = None, 0, 0
    for page in client.iter_customer_pages(page_size=500):
        if page.next_link is None:
            break
        number += 1
        listed += len(page.customers)
        stores.walk.record_page(account, walk_id, number,
                                [c.tenant_id for c in page.customers if c.relationship_kind == "reseller"])
        link = page.next_link
    began = (utc_now() - timedelta(minutes=1)).isoformat()
    stores.state.clear_checkpoint(account)  # the walk unit phase's, stopped midway
    stores.state.save_checkpoint(account, {"walkId": walk_id, "startedAt": began, "page": number, "listed": listed,
                                           "next": link.to_dict(), "fresh": False})
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM


def _peak_rss_mb() -> float:
    """This process's own peak RSS. Not getrusage's ru_maxrss: Linux carries that across exec, so a
    phase started by a parent holding a large estate would report the parent's memory."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Stop(Exception):
    """The unit walked the pages it was asked for."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("phase", choices=["incremental", "unit", "first", "walk-end"])
    parser.add_argument("--account", required=True)
    parser.add_argument("--pages", type=int, default=3)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    account = settings.accounts[0]
    tokens = AppTokenProvider(settings.authority_url, account.tenant_id, account.client_id,
                              client_secret=account.client_secret(settings.environ), cloud=settings.cloud)
    client = PartnerCenterClient(settings.api_url, tokens, LocalRequestBudget(10_000_000), pool_size=32)
    stores = SyncStores.open(settings.environ["SYNC_STORAGE_CONNECTION"])
    marks: list[tuple[float, int]] = []
    list_seconds = [0.0]
    pages = client.iter_customer_pages

    def timed_pages(*a, **k):
        iterator = pages(*a, **k)
        while True:
            began = time.monotonic()
            page = next(iterator, None)
            list_seconds[0] += time.monotonic() - began
            if page is None:
                return
            if not marks:
                marks.append((time.monotonic(), _read[0]))
            yield page

    client.iter_customer_pages = timed_pages

    def after_page(number: int) -> None:
        marks.append((time.monotonic(), _read[0]))
        if args.phase == "unit" and number >= args.pages:
            raise _Stop()

    if args.phase == "walk-end":
        _walked_but_the_last_page(client, stores, args.account)
    options = SyncOptions(page_size=500, concurrency=16, time_budget_seconds=3600)
    sync = AccountSync(args.account, client, stores, options, after_page=after_page)
    _read[0] = 0
    cpu0 = time.process_time()
    started = time.monotonic()
    result = sync.incremental() if args.phase == "incremental" else sync.full(Deadline.starting_now(3600))
    wall = time.monotonic() - started
    figures = {
        "phase": args.phase, "outcome": result.outcome, "wall_seconds": wall,
        "cpu_seconds": time.process_time() - cpu0, "list_seconds": list_seconds[0],
        "peak_rss_mb": _peak_rss_mb(),
        "entities_read": _read[0], "api_calls": client.stats.calls, "created": result.counts.created,
    }
    if args.phase == "unit" and len(marks) > 1:
        (first_at, first_read), (last_at, last_read) = marks[0], marks[-1]
        walked = len(marks) - 1
        figures.update(start_seconds=first_at - started, start_entities=first_read,
                       seconds_per_page=(last_at - first_at) / walked,
                       entities_per_page=(last_read - first_read) / walked)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
