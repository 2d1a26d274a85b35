"""Operators' command line: `python -m shared <command>`.

    sync incremental|full [--account ID] [--json]   run a sync now, as the timers do
    status [--account ID] [--json]                  last runs, lag, failures, held endings
    prune [--account ID] [--json]                   delete history past its retention, as the nightly run does
    webhook show|register|test [--account ID]       the account's Partner Center webhook registration
    events pending|publish [--account ID] [--json]  organization events waiting for the topic; publish them now
    events replay --account ID --since DATE [--json]  publish the change log from DATE again (same ids)

The development stack (simulator, local host, demo) is `python -m devstack`, not deployed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
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

    prune = commands.add_parser("prune", help="delete the history and change log past their retention now")
    prune.add_argument("--account", help="only this account id")
    prune.add_argument("--json", action="store_true", help="print what was deleted per table as JSON")

    events = commands.add_parser("events", help="organization events for the Platform (docs/events.md)")
    from .events import add_arguments as add_events_arguments

    add_events_arguments(events)

    webhook = commands.add_parser("webhook", help="show, register or test the account's Partner Center webhook")
    from .webhook import add_arguments as add_webhook_arguments

    add_webhook_arguments(webhook)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        # A failed token request is reported once, naming its connection (below): not again by the SDK.
        logging.getLogger("azure.identity").setLevel(logging.ERROR)
    from shared import telemetry
    from shared.credentials import TokenUnavailable
    from shared.settings import SettingsError

    load_local_settings()
    try:
        code = _run(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except TokenUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        # Operators' runs show up in Application Insights like the timers' do: send before exiting.
        telemetry.flush()
    failed = telemetry.token_failures()
    if failed:  # the exporter could not get a token: what ran is not in Application Insights
        print(f"error: {failed[0]}", file=sys.stderr)
        return code or 1
    return code


def _run(args) -> int:
    _configure_telemetry(args)
    if args.command == "webhook":
        from .webhook import run as run_webhook

        return run_webhook(args)
    if args.command == "events":
        from .events import run as run_events

        return run_events(args)
    if args.command == "sync":
        return _sync(args)
    if args.command == "prune":
        return _prune(args)
    return _status(args)


def _configure_telemetry(args) -> None:
    """Export like the Functions worker when a connection string (or OTLP endpoint) is set.

    The console keeps showing warnings only; what is exported includes the runs' INFO lines.
    """
    from shared import telemetry
    from shared.app import watch_current

    if telemetry.configure(watch=watch_current) != "none" and not args.verbose:
        root = logging.getLogger()
        for handler in root.handlers:
            if type(handler) is logging.StreamHandler:
                handler.setLevel(logging.WARNING)
        root.setLevel(logging.INFO)


def _sync(args) -> int:
    from shared import app

    wired = app.current()
    results = wired.run_accounts(args.mode, account_id=args.account)
    wired.publish_events_after_writes(account_id=args.account)  # as the timers do (docs/events.md)
    if args.json:
        print(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        for r in results:
            counts = ", ".join(f"{k} {v}" for k, v in r.counts.as_dict().items())
            print(f"{r.account_id}: {r.mode} {r.outcome} ({counts}; {r.api_calls} API calls, "
                  f"{r.throttled_calls} throttled){' - ' + r.error if r.error else ''}")
    # Isolated customer failures are reported, not fatal (docs/execution-model.md); a run that failed is, and so is a
    # partial run that made no progress (one that did what it could kept its watermark).
    return 0 if all(r.outcome in ("succeeded", "succeeded_with_failures", "checkpointed")
                    or (r.outcome == "partial" and _made_progress(r)) for r in results) else 1


def _prune(args) -> int:
    from shared import app

    report = app.current().prune(account_id=args.account)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        for account, counts in report.accounts.items():
            print(f"{account}: deleted " + ", ".join(f"{table} {count}" for table, count in counts.items()))
        if not report.finished:
            print("stopped at the time budget (SYNC_TIME_BUDGET_SECONDS): run it again to continue")
    return 0


def _made_progress(result) -> bool:
    counts = result.counts
    return counts.created + counts.updated + counts.unchanged + counts.ended > 0


def _status(args) -> int:
    from shared import app

    wired = app.current()
    status = wired.status  # builds the clients: a storage setting that is wrong says so even with no account
    ids = [args.account] if args.account else [a.id for a in wired.settings.accounts]
    statuses = status.accounts(ids)
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
    lines.append(f"  held endings: {len(status['held'])}")
    if status.get("abandoned_runs"):
        lines.append(f"  abandoned runs (process stopped mid-run): {len(status['abandoned_runs'])} (see --json)")
    events = status.get("webhook_events") or {}
    if events.get("pending") or events.get("failed") or events.get("poisoned"):
        lines.append(f"  webhook events: {len(events.get('pending', []))} pending, "
                     f"{len(events.get('failed', []))} failed, {len(events.get('poisoned', []))} poisoned")
    waiting = status.get("events")
    if waiting and waiting["waiting"]:
        lines.append(f"  organization events waiting: {waiting['waiting']}, oldest from {waiting['oldestWaiting']}")
    if status.get("parked_units"):
        lines.append(f"  parked sync units: {len(status['parked_units'])} (see --json)")
    for part in status.get("unavailable") or []:
        lines.append(f"  unavailable: {part['part']} ({', '.join(part['fields'])} unknown): {part['reason']}")
    return "\n".join(lines)


def load_local_settings(path: str = "local.settings.json") -> None:
    """Read `local.settings.json` as `func start` does; variables already set win."""
    try:
        with open(path, encoding="utf-8") as handle:
            values = json.load(handle).get("Values", {})
    except FileNotFoundError:
        return
    except (OSError, ValueError, AttributeError) as exc:
        print(f"warning: ignoring {path}: {exc}", file=sys.stderr)
        return
    for name, value in values.items():
        if isinstance(value, str) and value:
            os.environ.setdefault(name, value)
