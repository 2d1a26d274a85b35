"""Operators' event commands: ``python -m shared events pending|publish|replay`` (docs/events.md).

    pending [--account ID] [--json]                what waits for the topic, per account: how many, since when
    publish [--account ID] [--json]                publish what waits now, as the timers do after their runs
    replay  --account ID --since DATE [--json]     publish the account's change log from DATE again, same ids
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone

from shared import app
from shared.events.replay import ReplayStopped
from shared.events.topic import TopicRefused
from shared.operations.status import events_waiting
from shared.settings import SettingsError
from shared.store.outbox import EventOutbox


def add_arguments(parser: argparse.ArgumentParser) -> None:
    commands = parser.add_subparsers(dest="events_command", required=True)
    pending = commands.add_parser("pending", help="organization events waiting to be published")
    publish = commands.add_parser("publish", help="publish the waiting events now")
    for command in (pending, publish):
        command.add_argument("--account", help="only this account id")
        command.add_argument("--json", action="store_true", help="print machine-readable output")
    replay = commands.add_parser("replay", help="publish the change log from a date again (same event ids)")
    replay.add_argument("--account", required=True, help="the account id")
    replay.add_argument("--since", required=True, type=_moment,
                        help="a UTC date or moment within the change log's retention, e.g. 2026-11-01")
    replay.add_argument("--json", action="store_true", help="print machine-readable output")


def run(args: argparse.Namespace) -> int:
    """0 when done, 1 when the topic refused or the time ran out, 2 on a setting."""
    wired = app.current()
    if wired.topic_settings is None:
        raise SettingsError("PLATFORM_EVENTS__topicEndpointUri is not set: this app publishes no events")
    if args.events_command == "pending":
        return _pending(wired, args)
    if args.events_command == "publish":
        reports = wired.publish_events(account_id=args.account)
        _print([r.as_dict() for r in reports], args.json,
               lambda r: f"{r['account']}: {r['published']} published, {r['waiting']} waiting"
                         + (f" ({r['error']})" if r["error"] else ""))
        return 1 if any(r.error for r in reports) else 0
    try:
        sent, skipped = wired.replay_events(args.account, args.since)
    except (TopicRefused, ReplayStopped) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _print([{"account": args.account, "since": args.since.isoformat(), "sent": sent, "skipped": skipped}], args.json,
           lambda r: f"{r['account']}: {r['sent']} event(s) sent again since {r['since']}"
                     + (f", {r['skipped']} change(s) logged before organizations had a Version" if skipped else ""))
    return 0


def _pending(wired: app.App, args: argparse.Namespace) -> int:
    outbox = EventOutbox(wired.read_stores.tables)
    ids = [wired.settings.account(args.account).id] if args.account else [a.id for a in wired.settings.accounts]
    now = datetime.now(timezone.utc)
    found = [{"account": account_id, **events_waiting(outbox.waiting(account_id), now)} for account_id in ids]
    _print(found, args.json, lambda r: f"{r['account']}: {r['waiting']} waiting"
                                       + (f", oldest from {r['oldestWaiting']}" if r["oldestWaiting"] else ""))
    return 0


def _print(rows: list[dict], as_json: bool, line) -> None:
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(line(row))


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO date or moment: {text!r}") from None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
