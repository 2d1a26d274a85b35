"""Operators' webhook commands: ``python -m shared webhook show|register|test``.

    show     [--account ID]               the account's registration, and its pending/failed events
    register --url URL [--account ID]     create or update the registration (relationship events + test-created)
    test     [--account ID] [--wait S]    have Partner Center send a test-created event; follow its delivery
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from shared import app
from shared.partner_center import AuthenticationError, PartnerCenterError
from shared.settings import SettingsError
from shared.webhooks.events import REGISTERED_EVENTS
from shared.webhooks.processing import webhook_status
from shared.webhooks.registration import describe

_POLL_SECONDS = 1.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``show``, ``register`` and ``test`` subcommands to ``parser``."""
    commands = parser.add_subparsers(dest="webhook_command", required=True)
    show = commands.add_parser("show", help="the account's webhook registration and its waiting events")
    show.add_argument("--account", help="account id (needed when several are configured)")
    register = commands.add_parser("register", help="create or update the account's webhook registration")
    register.add_argument("--account", help="account id (needed when several are configured)")
    register.add_argument("--url", required=True,
                          help="the receiver, e.g. https://<app>.azurewebsites.net/api/partner-center/events/<account>")
    test = commands.add_parser("test", help="have Partner Center send a test-created event")
    test.add_argument("--account", help="account id (needed when several are configured)")
    test.add_argument("--wait", type=float, default=30.0, help="seconds to follow the delivery (0: do not wait)")


def run(args: argparse.Namespace) -> int:
    """Run the chosen subcommand; 0 on success, 1 when Partner Center refused, 2 on a setting."""
    try:
        wired = app.current()
        account_id = _account_id(wired, args.account)
        registration = wired.registration(account_id)
        if args.webhook_command == "show":
            print(describe(registration.show()))
            print(json.dumps(webhook_status(wired.events, account_id), indent=2, default=str))
        elif args.webhook_command == "register":
            stored = registration.register(args.url, REGISTERED_EVENTS)
            print(describe(stored))
        else:
            return _test(registration, args.wait)
    except (SettingsError, AuthenticationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except PartnerCenterError as exc:
        print(f"error: Partner Center: {exc}", file=sys.stderr)
        return 1
    return 0


def _test(registration, wait: float) -> int:
    correlation_id = registration.send_test_event()
    print(f"test event requested: correlation id {correlation_id}")
    deadline = time.monotonic() + wait
    status: dict = {}
    while wait > 0 and time.monotonic() < deadline:
        status = registration.test_event_status(correlation_id)
        if str(status.get("status", "")).lower() in ("completed", "failed"):
            break
        time.sleep(_POLL_SECONDS)
    if status:
        print(json.dumps(status, indent=2))
    return 0 if str(status.get("status", "completed" if wait <= 0 else "")).lower() == "completed" else 1


def _account_id(wired: app.App, given: str | None) -> str:
    settings = wired.settings
    if given:
        return settings.account(given).id
    if len(settings.accounts) != 1:
        raise SettingsError(f"{len(settings.accounts)} accounts are configured: name one with --account")
    return settings.accounts[0].id
