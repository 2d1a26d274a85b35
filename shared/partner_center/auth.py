"""Access tokens for Partner Center through MSAL, cached per process and refreshed before expiry."""

from __future__ import annotations

import threading
import time
from typing import Protocol
from urllib.parse import urlsplit

import msal

from shared.credentials import failure_reason

from .clouds import PUBLIC, Cloud
from .errors import AuthenticationError
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
        cloud: Cloud = PUBLIC,
    ) -> None:
        if not (client_secret or certificate):
            raise AuthenticationError(f"no client secret or certificate configured for client {client_id}")
        self.client_id = client_id
        self.tenant_id = tenant_id
        self.cloud = cloud
        self._scope = cloud.app_scope
        self._lock = threading.Lock()
        self._current = ""
        self._fresh_until = 0.0  # monotonic: until then the current token is handed out as it is
        self._authority_url = authority_url
        self._credential = certificate or client_secret
        self._app: msal.ConfidentialClientApplication | None = None

    def msal_app(self) -> msal.ConfidentialClientApplication:
        """The MSAL application of this client (built once, at first use)."""
        if self._app is None:
            self._app = self._build_app()
        return self._app

    def token(self, *, rejected: str | None = None) -> str:
        # Every Partner Center call asks: while the token is fresh, no lock and no MSAL cache search
        # (one lock around MSAL serialised a walk's sixteen fetch threads).
        current = self._current
        if rejected is None and current and time.monotonic() < self._fresh_until:
            return current
        with self._lock:
            self.msal_app()
            if rejected is not None and rejected != self._current and self._current:
                return self._current
            if rejected is not None:
                cache = self._app.token_cache
                for entry in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                    cache.remove_at(entry)
            try:
                result = self._app.acquire_token_for_client(scopes=[self._scope])
            except Exception as exc:  # network failures, or an answer MSAL cannot parse
                raise AuthenticationError(
                    f"Partner Center tenant {self.tenant_id}: no access token for client id {self.client_id} "
                    f"(client credentials): {failure_reason(exc)}"
                ) from exc
            if "access_token" not in result:
                raise _refusal(result, self.tenant_id, self.client_id)
            self._current = result["access_token"]
            lifetime = float(result.get("expires_in") or 0)
            self._fresh_until = time.monotonic() + max(0.0, lifetime - _EARLY_RENEWAL_SECONDS)
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
            raise AuthenticationError(
                f"Partner Center tenant {self.tenant_id}: no access token for client id {self.client_id} "
                f"(client credentials): cannot use authority {authority}: {failure_reason(exc)}") from exc


class RefreshTokenVault(Protocol):
    """Where an account's current refresh token lives between runs."""

    def load(self) -> str: ...

    def save(self, refresh_token: str) -> None: ...


class RefreshTokenExpired(AuthenticationError):
    """The stored refresh token no longer works: an admin must sign in again (with MFA)."""


# Entra answers that mean a person has to act: an expired or revoked grant, or MFA required.
_SIGN_IN_AGAIN = {"700082": "has expired or was revoked", "50173": "was revoked",
                  "50076": "needs multi-factor authentication", "50079": "needs multi-factor authentication",
                  "50158": "needs a conditional-access challenge"}
_EARLY_RENEWAL_SECONDS = 300


class UserTokenProvider:
    """App+user tokens (Secure Application Model) for the endpoints app-only tokens cannot use.

    Every redemption of the refresh token returns a new one (90-day lifetime), which is saved
    back to the vault at once, so the account keeps working as long as it syncs at least every
    90 days. Access tokens are kept until five minutes before they expire.
    """

    def __init__(self, authority_url: str, tenant_id: str, client_id: str, client_secret: str,
                 vault: RefreshTokenVault, *, cloud: Cloud = PUBLIC, clock=time.monotonic) -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.cloud = cloud
        self._app_tokens = AppTokenProvider(authority_url, tenant_id, client_id, client_secret=client_secret,
                                            cloud=cloud)
        self._vault = vault
        self._scope = cloud.user_scope
        self._clock = clock
        self._lock = threading.Lock()
        self._current = ""
        self._expires_at = 0.0

    def token(self, *, rejected: str | None = None) -> str:
        with self._lock:
            fresh = self._current and self._clock() < self._expires_at - _EARLY_RENEWAL_SECONDS
            if fresh and (rejected is None or rejected != self._current):
                return self._current
            app = self._app_tokens.msal_app()
            try:
                result = app.acquire_token_by_refresh_token(self._vault.load(), scopes=[self._scope])
            except Exception as exc:
                raise AuthenticationError(
                    f"Partner Center tenant {self.tenant_id}: no access token for client id {self.client_id} "
                    f"(refresh token): {failure_reason(exc)}"
                ) from exc
            if "access_token" not in result:
                raise _refusal(result, self.tenant_id, self.client_id)
            if result.get("refresh_token"):
                self._vault.save(result["refresh_token"])
            self._current = result["access_token"]
            self._expires_at = self._clock() + float(result.get("expires_in", 3600))
            return self._current


def _refusal(result: dict, tenant_id: str, client_id: str) -> AuthenticationError:
    description = _first_line(result.get("error_description", ""))
    for code, meaning in _SIGN_IN_AGAIN.items():
        if f"AADSTS{code}" in description:
            return RefreshTokenExpired(
                f"the refresh token of tenant {tenant_id} {meaning} (AADSTS{code}): an admin of the partner "
                "tenant must sign in again with MFA and store the new refresh token in the account's setting"
            )
    return AuthenticationError(f"tenant {tenant_id} refused client {client_id}: "
                               f"{result.get('error', 'unknown_error')}: {description}")


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""
