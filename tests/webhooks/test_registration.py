"""The registration helper and its command line, against the simulator's registration API."""

from __future__ import annotations

import argparse

from shared.partner_center import AppTokenProvider
from shared.webhooks.cli import add_arguments, run
from shared.webhooks.events import REGISTERED_EVENTS
from shared.webhooks.registration import WebhookRegistration, registration_for
from tests.webhooks.conftest import eventually


def webhook(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


def new_partner_registration(sim) -> WebhookRegistration:
    """The registration client of a fresh simulated partner, which has no registration yet."""
    partner = sim.add_partner()
    tokens = AppTokenProvider(sim.url, partner.tenant_id, partner.client_id, client_secret=partner.client_secret)
    return WebhookRegistration(sim.url, tokens)


def test_register_creates_a_registration_where_there_is_none(receiver):
    registration = new_partner_registration(receiver.sim)
    assert registration.show() is None
    stored = registration.register(receiver.url)
    assert stored["WebhookUrl"] == receiver.url and stored["WebhookEvents"] == list(REGISTERED_EVENTS)
    assert registration.show()["WebhookUrl"] == receiver.url


def test_register_updates_an_existing_registration(receiver, capsys):
    assert webhook("register", "--url", receiver.url + "?v=2") == 0
    registration = receiver.sim.webhooks.registration(receiver.sim.partner_tenant_id)
    assert registration["WebhookUrl"] == receiver.url + "?v=2"
    assert registration["WebhookEvents"] == list(REGISTERED_EVENTS)
    assert "?v=2" in capsys.readouterr().out


def test_show_prints_the_registration_and_the_events_waiting(receiver, capsys):
    assert webhook("show") == 0
    printed = capsys.readouterr().out
    assert receiver.url in printed and '"pending": []' in printed


def test_a_test_event_reaches_the_receiver_and_is_acknowledged(receiver, capsys):
    assert webhook("test", "--wait", "10") == 0
    printed = capsys.readouterr().out
    assert '"status": "completed"' in printed
    assert eventually(lambda: [e["EventName"] for e in receiver.stored_events()]) == ["test-created"]
    assert receiver.stored_events()[0]["Status"] == "ignored"


def test_an_unknown_account_is_a_setting_error(receiver, capsys):
    assert webhook("show", "--account", "nobody") == 2
    assert "nobody" in capsys.readouterr().err


def test_the_available_events_include_both_relationship_events(receiver):
    assert set(REGISTERED_EVENTS) <= set(registration_for(receiver.account_id).available_events())
