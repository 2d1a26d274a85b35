"""The registration helper and its command line, against the simulator's registration API."""

from __future__ import annotations

import argparse
import json

import pytest

from shared import app
from shared.partner_center import AppTokenProvider, PartnerCenterClient, LocalRequestBudget, RetryPolicy, ThrottledError
from shared.cli.webhook import add_arguments, run
from shared.webhooks.events import REGISTERED_EVENTS
from shared.webhooks.registration import WebhookRegistration
from tests.webhooks.conftest import eventually


def webhook(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return run(parser.parse_args(list(argv)))


def new_partner_registration(sim, budget: LocalRequestBudget | None = None, **policy) -> WebhookRegistration:
    """The registration client of a fresh simulated partner, which has no registration yet."""
    partner = sim.add_partner()
    tokens = AppTokenProvider(sim.url, partner.tenant_id, partner.client_id, client_secret=partner.client_secret)
    fast = RetryPolicy(backoff_initial=0.01, backoff_max=0.05, **policy)
    return WebhookRegistration(PartnerCenterClient(sim.url, tokens, budget or LocalRequestBudget(1_000), policy=fast))


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
    # Verified and acknowledged, not stored: Partner Center's delivery record is the proof it arrived.
    [delivery] = [d for d in receiver.sim.webhook_deliveries() if d.event_name == "test-created"]
    answer = json.loads(delivery.response_body)
    assert delivery.status == 200 and (answer["stored"], answer["reason"]) == (False, "test-event")
    assert receiver.stored_events() == []


def test_an_unknown_account_is_a_setting_error(receiver, capsys):
    assert webhook("show", "--account", "nobody") == 2
    assert "nobody" in capsys.readouterr().err


def test_the_available_events_include_both_relationship_events(receiver):
    assert set(REGISTERED_EVENTS) <= set(app.current().registration(receiver.account_id).available_events())


def test_registration_calls_share_the_clients_budget_retries_and_typed_errors(receiver):
    sim = receiver.sim
    budget = LocalRequestBudget(1_000)
    registration = new_partner_registration(sim, budget, throttled_attempts=2)
    partner = registration.client.tokens.tenant_id
    sim.inject("webhook_registration", "status", status=503, partner_tenant_id=partner)
    sim.inject("webhook_registration", "drop", partner_tenant_id=partner)
    assert registration.show() is None  # two faults retried, then the 404 means "none"
    assert registration.client.stats.retried == 2
    assert registration.client.stats.by_endpoint["webhook_registration"] == 3
    assert len(budget._starts) == 3  # every attempt took a slot of the account's budget
    sim.inject("webhook_registration", "status", status=429, retry_after=0.01, times=2, partner_tenant_id=partner)
    with pytest.raises(ThrottledError):
        registration.register(receiver.url)


def test_a_registration_can_be_deleted(receiver):
    registration = new_partner_registration(receiver.sim)
    registration.register(receiver.url)
    registration.delete()
    assert registration.show() is None


def test_the_registration_of_a_configured_account_uses_the_accounts_shared_budget(receiver):
    from shared.app import INTERACTIVE

    settings = app.current().settings
    registration = app.current().registration(receiver.account_id)
    # The one budget every instance of the account shares, on the lane an operator waiting is on.
    shared = app.current().budget(receiver.account_id, INTERACTIVE)
    assert registration.client.budget.budget is shared.budget and registration.client.budget.name == INTERACTIVE
