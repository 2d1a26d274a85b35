"""The Entra ID (Azure AD) side: discovery document, access tokens, rotating refresh tokens, AAD errors.

Access tokens are opaque random strings the simulator remembers; app-only tokens come from the
client-credentials grant, app+user tokens from the refresh-token grant (Secure Application Model).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

PARTNER_CENTER_RESOURCE = "https://api.partnercenter.microsoft.com"
# Partner Center operated by 21Vianet issues and accepts tokens for its own API host.
CHINA_RESOURCE = "https://partner.partnercenterapi.microsoftonline.cn"
# Azure AD Graph: Entra still issues tokens for it, Partner Center refuses them (401, 900420).
RETIRED_RESOURCE = "https://graph.windows.net"
RESOURCES = {"public": PARTNER_CENTER_RESOURCE, "china": CHINA_RESOURCE}
APP_ONLY_SCOPE = f"{PARTNER_CENTER_RESOURCE}/.default"
USER_IMPERSONATION_SCOPE = f"{PARTNER_CENTER_RESOURCE}/user_impersonation"
# MSAL adds these to every user-flow request; they do not name a resource.
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
REFRESH_TOKEN_LIFETIME = 90 * 24 * 3600


@dataclass(frozen=True)
class Grant:
    """What an access token stands for."""

    partner_tenant_id: str
    app_user: bool  # True for app+user tokens (refresh-token grant), False for app-only
    expires_at: float  # monotonic
    audience: str = PARTNER_CENTER_RESOURCE
    mfa: bool = True  # app+user tokens: the sign-in behind the refresh token used MFA


@dataclass(frozen=True)
class RefreshGrant:
    partner_tenant_id: str
    client_id: str
    expires_at: float  # monotonic


class EntraError(Exception):
    """An AAD error answer: `error`, and an `error_description` that starts with an AADSTS code."""

    def __init__(self, status: int, error: str, aadsts: int, message: str) -> None:
        super().__init__(f"AADSTS{aadsts}: {message}")
        self.status = status
        self.error = error
        self.aadsts = aadsts
        self.message = message

    def body(self) -> dict[str, Any]:
        trace_id, correlation_id = str(uuid.uuid4()), str(uuid.uuid4())
        timestamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
        return {
            "error": self.error,
            "error_description": (
                f"AADSTS{self.aadsts}: {self.message} Trace ID: {trace_id} "
                f"Correlation ID: {correlation_id} Timestamp: {timestamp}"
            ),
            "error_codes": [self.aadsts],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        }


class TokenIssuer:
    """Issues and checks access tokens and single-use refresh tokens."""

    def __init__(self, lifetime: int) -> None:
        self.lifetime = lifetime
        self._lock = threading.Lock()
        self._access: dict[str, Grant] = {}
        self._refresh: dict[str, RefreshGrant] = {}

    def issue_access_token(self, partner_tenant_id: str, *, app_user: bool,
                           audience: str = PARTNER_CENTER_RESOURCE, mfa: bool = True) -> str:
        """A new access token for this partner and audience, valid for `lifetime` seconds."""
        token = secrets.token_urlsafe(48)
        with self._lock:
            self._access[token] = Grant(partner_tenant_id, app_user, time.monotonic() + self.lifetime, audience, mfa)
        return token

    def grant(self, token: str) -> Grant | None:
        """The grant behind a token, or None when it is unknown, expired or revoked."""
        with self._lock:
            grant = self._access.get(token)
            if grant is not None and grant.expires_at <= time.monotonic():
                del self._access[token]
                return None
            return grant

    def expire_access_tokens(self) -> None:
        """Every access token issued so far stops working (refresh tokens stay valid)."""
        with self._lock:
            self._access.clear()

    def issue_refresh_token(self, partner_tenant_id: str, client_id: str) -> str:
        """A refresh token for the partner's app, as if its admin had signed in once with MFA."""
        token = "0.A" + secrets.token_urlsafe(96)
        with self._lock:
            self._refresh[token] = RefreshGrant(partner_tenant_id, client_id, time.monotonic() + REFRESH_TOKEN_LIFETIME)
        return token

    def redeem_refresh_token(self, token: str, partner_tenant_id: str, client_id: str) -> str:
        """Use up a refresh token and return its successor; `EntraError` when it is not redeemable."""
        with self._lock:
            grant = self._refresh.pop(token, None)
            valid = (
                grant is not None
                and grant.partner_tenant_id == partner_tenant_id
                and grant.client_id == client_id
                and grant.expires_at > time.monotonic()
            )
            if not valid:
                raise EntraError(
                    400, "invalid_grant", 700082,
                    "The refresh token has expired or is invalid due to sign-in frequency checks by "
                    "conditional access, or it was already redeemed.",
                )
        return self.issue_refresh_token(partner_tenant_id, client_id)


def openid_configuration(base_url: str, tenant_id: str) -> dict[str, Any]:
    """The v2.0 discovery document of a tenant, with every endpoint on the simulator."""
    authority = f"{base_url}/{tenant_id}"
    return {
        "token_endpoint": f"{authority}/oauth2/v2.0/token",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": f"{authority}/discovery/v2.0/keys",
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": f"{authority}/v2.0",
        "request_uri_parameter_supported": False,
        "userinfo_endpoint": f"{base_url}/oidc/userinfo",
        "authorization_endpoint": f"{authority}/oauth2/v2.0/authorize",
        "device_authorization_endpoint": f"{authority}/oauth2/v2.0/devicecode",
        "http_logout_supported": True,
        "frontchannel_logout_supported": True,
        "end_session_endpoint": f"{authority}/oauth2/v2.0/logout",
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "name", "tid", "ver", "oid"],
        "tenant_region_scope": "WW",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }


def check_scope(scope: str | None, grant_type: str) -> str:
    """The audience a token request asks for (one resource, nothing else), or `EntraError`.

    Entra issues tokens for Partner Center in either cloud and for the retired Azure AD Graph
    audience alike; it is Partner Center that refuses a token of the wrong audience.
    """
    requested = set((scope or "").split()) - OIDC_SCOPES
    resources = (PARTNER_CENTER_RESOURCE, CHINA_RESOURCE, RETIRED_RESOURCE)
    if grant_type == "client_credentials":
        allowed = {f"{resource}/.default" for resource in resources}
        if requested and not all(item.endswith("/.default") for item in requested):
            raise EntraError(
                400, "invalid_scope", 1002012,
                f"The provided value for scope {scope} is not valid. Client credential flows must have a "
                "scope value with /.default suffixed to the resource identifier (application ID URI).",
            )
    else:
        allowed = {f"{resource}/{suffix}" for resource in resources for suffix in (".default", "user_impersonation")}
    if len(requested) != 1 or not requested <= allowed:
        raise EntraError(
            400, "invalid_resource", 500011,
            f"The resource principal named {' '.join(sorted(requested)) or '(none)'} was not found in the "
            f"tenant. Only {', '.join(resources)} are served here.",
        )
    return next(iter(requested)).rsplit("/", 1)[0]


def granted_scope(requested: str | None) -> str:
    """The scope a refresh-token redemption grants: the Partner Center scope that was asked for."""
    return " ".join(item for item in (requested or "").split() if item not in OIDC_SCOPES)


def id_token(base_url: str, partner_tenant_id: str, client_id: str, user: str, user_id: str) -> str:
    """An unsigned ID token for the partner admin (MSAL only reads its claims)."""
    now = int(time.time())
    header = {"typ": "JWT", "alg": "none"}
    claims = {
        "aud": client_id,
        "iss": f"{base_url}/{partner_tenant_id}/v2.0",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "name": "Partner Admin",
        "oid": user_id,
        "preferred_username": user,
        "sub": user_id,
        "tid": partner_tenant_id,
        "ver": "2.0",
    }
    return f"{_b64json(header)}.{_b64json(claims)}."


def client_info(user_id: str, partner_tenant_id: str) -> str:
    """The `client_info` MSAL uses to key its account cache."""
    return _b64json({"uid": user_id, "utid": partner_tenant_id})


def _b64json(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).rstrip(b"=").decode()
