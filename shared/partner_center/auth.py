"""Access tokens for Partner Center through MSAL, cached per process and refreshed before expiry."""

from __future__ import annotations

import hashlib
import threading
from typing import Protocol
from urllib.parse import urlsplit

import msal

from .errors import AuthenticationError

PARTNER_CENTER_SCOPE = "https://api.partnercenter.microsoft.com/.default"
USER_IMPERSONATION_SCOPE = "https://api.partnercenter.microsoft.com/user_impersonation"
# Hosts MSAL already knows; for any other (sovereign clouds aside: a local simulator) instance
# discovery would call login.microsoftonline.com, so it is turned off there.
_WELL_KNOWN_AUTHORITY_HOSTS = {
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
}


class TokenProvider(Protocol):
    """Anything that hands out bearer tokens for Partner Center."""

    def token(self, *, rejected: str | None = None) -> str:
        """A valid token; ``rejected`` is one Partner Center just refused, so it must not come back."""
        ...


class AppTokenProvider:
    """App-only (client credentials) tokens for one partner tenant.

    MSAL keeps the token in its in-memory cache and renews it shortly before it expires. After a
    401 the caller passes the ``rejected`` token: the first thread to do so drops MSAL's cached
    token, the others get the fresh one instead of asking Entra again.
    """

    def __init__(
        self,
        authority_url: str,
        tenant_id: str,
        client_id: str,
        *,
        client_secret: str | None = None,
        certificate: dict | None = None,
        scope: str = PARTNER_CENTER_SCOPE,
    ) -> None:
        if not (client_secret or certificate):
            raise AuthenticationError(f"no client secret or certificate configured for client {client_id}")
        self.client_id = client_id
        self.tenant_id = tenant_id
        self._scope = scope
        self._lock = threading.Lock()
        self._current = ""
        self._authority_url = authority_url
        self._credential = certificate or client_secret
        self._app: msal.ConfidentialClientApplication | None = None

    def token(self, *, rejected: str | None = None) -> str:
        with self._lock:
            if self._app is None:
                self._app = self._build_app()
            if rejected is not None and rejected != self._current and self._current:
                return self._current
            if rejected is not None:
                cache = self._app.token_cache
                for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(entry)
            try:
                result = self._app.acquire_token_for_client(scopes=[self._scope])
            except Exception as exc:  # network failures surface from requests inside MSAL
                raise AuthenticationError(
                    f"token request for tenant {self.tenant_id} failed: {type(exc).__name__}: {exc}"
                ) from exc
            if "access_token" not in result:
                raise AuthenticationError(
                    f"tenant {self.tenant_id} refused client {self.client_id}: "
                    f"{result.get('error', 'unknown_error')}: {_first_line(result.get('error_description', ''))}"
                )
            self._current = result["access_token"]
            return self._current

    def _build_app(self) -> msal.ConfidentialClientApplication:
        # Built at the first token request, not in __init__: MSAL reads the authority's discovery
        # document when it is built, and a client that is never used should cost no call.
        authority = f"{self._authority_url.rstrip('/')}/{self.tenant_id}"
        known = urlsplit(self._authority_url).hostname in _WELL_KNOWN_AUTHORITY_HOSTS
        try:
            return msal.ConfidentialClientApplication(
                self.client_id,
                client_credential=self._credential,
                authority=authority,
                instance_discovery=None if known else False,
            )
        except Exception as exc:
            # A bad authority URL, an unreachable host, or a discovery document MSAL cannot read.
            raise AuthenticationError(f"cannot use authority {authority}: {type(exc).__name__}") from exc


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


_providers: dict[tuple[str, str, str, str], AppTokenProvider] = {}
_providers_lock = threading.Lock()


def app_token_provider(authority_url: str, tenant_id: str, client_id: str, client_secret: str) -> AppTokenProvider:
    """The one provider per (authority, tenant, client) in this process, so tokens are reused."""
    # The secret's digest is part of the key so a rotated secret gets a fresh provider.
    key = (authority_url.rstrip("/"), tenant_id, client_id, hashlib.sha256(client_secret.encode()).hexdigest())
    with _providers_lock:
        provider = _providers.get(key)
        if provider is None:
            provider = AppTokenProvider(authority_url, tenant_id, client_id, client_secret=client_secret)
            _providers[key] = provider
        return provider


def forget_token_providers() -> None:
    """Drop every cached provider (tests; a rotated secret)."""
    with _providers_lock:
        _providers.clear()
