"""The account's webhook registration at Partner Center (``/webhooks/v1/registration``).

One registration per partner tenant: a callback URL and the event names it receives. App-only
tokens are enough. A test event (``test-created``) can be requested and its delivery followed.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import requests

from shared.partner_center import AuthenticationError, TokenProvider, app_token_provider
from shared.settings import Settings, get_settings

from .events import REGISTERED_EVENTS

TIMEOUT = (5.0, 30.0)


class RegistrationError(RuntimeError):
    """Partner Center refused or failed a registration call; ``status`` is its HTTP status."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class WebhookRegistration:
    """Reads and writes one partner's registration with its app's tokens."""

    def __init__(self, api_url: str, tokens: TokenProvider, session: requests.Session | None = None) -> None:
        self.base = api_url.rstrip("/") + "/webhooks/v1/registration"
        self.tokens = tokens
        self.session = session or requests.Session()

    def show(self) -> dict | None:
        """The current registration, or None when the partner has none."""
        try:
            return self._call("GET", "")
        except RegistrationError as exc:
            if exc.status == 404:
                return None
            raise

    def register(self, webhook_url: str, events: tuple[str, ...] | list[str] = REGISTERED_EVENTS) -> dict:
        """Create the registration, or update it (PUT) when one exists; returns what Partner Center stored."""
        body = {"WebhookUrl": webhook_url, "WebhookEvents": list(events)}
        return self._call("PUT" if self.show() is not None else "POST", "", body)

    def available_events(self) -> list[str]:
        """Every event name Partner Center offers."""
        return self._call("GET", "/events")

    def send_test_event(self) -> str:
        """Ask Partner Center to deliver a ``test-created`` event; returns its correlation id.
        (Partner Center allows two per minute.)"""
        answer = self._call("POST", "/validationEvents")
        return answer["correlationId"] if isinstance(answer, dict) else str(answer)

    def test_event_status(self, correlation_id: str) -> dict:
        """The test event's delivery: ``status`` and one result per attempt."""
        return self._call("GET", f"/validationEvents/{uuid.UUID(correlation_id)}")

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {
            "Authorization": f"Bearer {self.tokens.token()}",
            "Accept": "application/json",
            "MS-RequestId": str(uuid.uuid4()),
            "MS-CorrelationId": str(uuid.uuid4()),
        }
        try:
            response = self.session.request(method, self.base + path, json=body, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise RegistrationError(f"{method} {path or '/'}: {type(exc).__name__} talking to Partner Center") from exc
        if not 200 <= response.status_code < 300:
            raise RegistrationError(f"{method} registration{path}: {response.status_code} {_description(response)}",
                                    response.status_code)
        try:
            return response.json()
        except ValueError:
            raise RegistrationError(f"{method} registration{path}: the answer is not JSON",
                                    response.status_code) from None


def _description(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason or ""
    if isinstance(body, dict):
        return str(body.get("description") or body.get("message") or "")[:300]
    return ""


def registration_for(account_id: str, settings: Settings | None = None) -> WebhookRegistration:
    """The registration client of a configured account (its app-only credentials)."""
    settings = settings or get_settings()
    account = settings.account(account_id)
    secret = account.client_secret(settings.environ)
    if not secret:
        raise AuthenticationError(f"account {account.id}: the setting {account.client_secret_setting} is empty")
    tokens = app_token_provider(settings.authority_url, account.tenant_id, account.client_id, secret)
    return WebhookRegistration(settings.api_url, tokens)


def describe(registration: dict | None) -> str:
    """A registration as an operator reads it."""
    if registration is None:
        return "no webhook registration"
    fields = {key.lower(): value for key, value in registration.items()}
    return json.dumps({"webhookUrl": fields.get("webhookurl"), "webhookEvents": fields.get("webhookevents")}, indent=2)
