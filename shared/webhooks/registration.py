"""The account's webhook registration at Partner Center (``/webhooks/v1/registration``).

One registration per partner tenant: a callback URL and the event names it receives. App-only
tokens are enough. A test event (``test-created``) can be requested and its delivery followed.
"""

from __future__ import annotations

import json
import uuid

from shared.partner_center import (
    AuthenticationError,
    NotFoundError,
    PartnerCenterClient,
    app_token_provider,
)
from shared.settings import Settings, get_settings

from .events import REGISTERED_EVENTS

PATH = "/webhooks/v1/registration"


class WebhookRegistration:
    """Reads and writes one partner's registration through the account's Partner Center client,
    so these calls share its request budget, retries and typed errors (`PartnerCenterError`)."""

    def __init__(self, client: PartnerCenterClient) -> None:
        self.client = client

    def show(self) -> dict | None:
        """The current registration, or None when the partner has none."""
        try:
            return self._call("GET", "")
        except NotFoundError:
            return None

    def register(self, webhook_url: str, events: tuple[str, ...] | list[str] = REGISTERED_EVENTS) -> dict:
        """Create the registration, or update it (PUT) when one exists; returns what Partner Center stored."""
        body = {"WebhookUrl": webhook_url, "WebhookEvents": list(events)}
        return self._call("PUT" if self.show() is not None else "POST", "", body)

    def delete(self) -> None:
        """Remove the partner's registration (Partner Center then sends no more events)."""
        self._call("DELETE", "")

    def available_events(self) -> list[str]:
        """Every event name Partner Center offers."""
        return self._call("GET", "/events", endpoint="webhook_events")

    def send_test_event(self) -> str:
        """Ask Partner Center to deliver a ``test-created`` event; returns its correlation id.
        (Partner Center allows two per minute.)"""
        answer = self._call("POST", "/validationEvents", endpoint="webhook_validation_events")
        return answer["correlationId"] if isinstance(answer, dict) else str(answer)

    def test_event_status(self, correlation_id: str) -> dict:
        """The test event's delivery: ``status`` and one result per attempt."""
        return self._call("GET", f"/validationEvents/{uuid.UUID(correlation_id)}", endpoint="webhook_validation_events")

    def _call(self, method: str, path: str, body: object = None, *, endpoint: str = "webhook_registration"):
        return self.client.request_json(method, PATH + path, endpoint=endpoint, body=body,
                                        what=f"webhook registration{path} ({method})")


def registration_for(account_id: str, settings: Settings | None = None) -> WebhookRegistration:
    """The registration client of a configured account: its app-only credentials, and the
    account's request budget shared by every instance (the interactive lane: an operator waits)."""
    # Imported here: the sync service imports the webhook package.
    from shared.sync.service import INTERACTIVE, budget_config, request_budgets, stores_for

    settings = settings or get_settings()
    account = settings.account(account_id)
    secret = account.client_secret(settings.environ)
    if not secret:
        raise AuthenticationError(f"account {account.id}: the setting {account.client_secret_setting} is empty")
    tokens = app_token_provider(settings.authority_url, account.tenant_id, account.client_id, secret,
                                cloud=settings.cloud)
    tables = stores_for(settings).tables
    budget = request_budgets.lane(tables.client(tables.names.request_budget), account.id, budget_config(settings),
                                  lane=INTERACTIVE)
    return WebhookRegistration(PartnerCenterClient(settings.api_url, tokens, budget, pool_size=2))


def describe(registration: dict | None) -> str:
    """A registration as an operator reads it."""
    if registration is None:
        return "no webhook registration"
    fields = {key.lower(): value for key, value in registration.items()}
    return json.dumps({"webhookUrl": fields.get("webhookurl"), "webhookEvents": fields.get("webhookevents")}, indent=2)
