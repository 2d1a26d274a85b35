"""Operators' command line: `python -m shared <command>`.

    sync incremental|full [--account ID] [--json]   run a sync now, as the timers do
    status [--account ID] [--json]                  last runs, lag, failures, held deletions
    simulator [--port P] [--customers N] ...        a local Partner Center over HTTPS
    demo [--customers N]                            the whole story on Azurite and the simulator
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m shared", description="Partner Center organization sync")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    commands = parser.add_subparsers(dest="command", required=True)

    sync = commands.add_parser("sync", help="run a sync of every account (or one) now")
    sync.add_argument("mode", choices=["incremental", "full"])
    sync.add_argument("--account", help="only this account id")
    sync.add_argument("--json", action="store_true", help="print a machine-readable summary")

    status = commands.add_parser("status", help="per-account sync status")
    status.add_argument("--account", help="only this account id")
    status.add_argument("--json", action="store_true", help="print machine-readable status")

    sim = commands.add_parser("simulator", help="run the Partner Center simulator over HTTPS")
    sim.add_argument("--port", type=int, default=8443)
    sim.add_argument("--customers", type=int, default=25)
    sim.add_argument("--seed", type=int, default=1)
    sim.add_argument("--latency", type=float, default=0.0, help="seconds added to every API response")
    sim.add_argument("--requests-per-minute", type=int, default=None, help="per-tenant limit (429 beyond)")
    sim.add_argument("--next-link-form", choices=["v1", "bare"], default="v1")
    sim.add_argument("--state-dir", default=".local/simulator", help="where the CA and certificates go")

    demo = commands.add_parser("demo", help="the main job end to end on Azurite and the simulator")
    demo.add_argument("--customers", type=int, default=40)
    demo.add_argument("--seed", type=int, default=42)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.command == "simulator":
        from shared.simulator.cli import serve

        serve(
            port=args.port, customers=args.customers, seed=args.seed, latency=args.latency,
            requests_per_minute=args.requests_per_minute, next_link_form=args.next_link_form,
            state_dir=args.state_dir,
        )
        return 0
    if args.command == "demo":
        from shared.local.demo import run_demo

        return run_demo(customers=args.customers, seed=args.seed)

    from shared.settings import SettingsError

    try:
        if args.command == "sync":
            return _sync(args)
        return _status(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _sync(args) -> int:
    from shared.sync.service import run_accounts

    results = run_accounts(args.mode, account_id=args.account)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            counts = ", ".join(f"{k} {v}" for k, v in r.counts.as_dict().items())
            print(f"{r.account_id}: {r.mode} {r.outcome} ({counts}; {r.api_calls} API calls, "
                  f"{r.throttled_calls} throttled){' - ' + r.error if r.error else ''}")
    return 0 if all(r.outcome in ("succeeded", "checkpointed") for r in results) else 1


def _status(args) -> int:
    from shared.settings import get_settings
    from shared.sync.status import account_status
    from shared.sync.service import stores_for

    settings = get_settings()
    stores = stores_for(settings)
    ids = [args.account] if args.account else [a.id for a in settings.accounts]
    statuses = [account_status(stores, account_id) for account_id in ids]
    if args.json:
        print(json.dumps(statuses, indent=2, default=str))
    else:
        for status in statuses:
            print(format_status(status))
    return 0


def format_status(status: dict) -> str:
    lines = [f"account {status['account']}"]
    for mode in ("incremental", "full"):
        run = status.get(f"last_{mode}")
        if run:
            lines.append(f"  last {mode}: {run['outcome']} at {run['endedAt']} {run['counts']}")
        else:
            lines.append(f"  last {mode}: never")
    lines.append(f"  lag: {status['lag_seconds']} s since the last successful sync")
    lines.append(f"  failing customers: {len(status['failing'])}, quarantined: {len(status['quarantined'])}")
    lines.append(f"  held deletions: {len(status['held'])}")
    return "\n".join(lines)
