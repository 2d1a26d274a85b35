"""The Partner Center clouds: each one's API base URL, Entra authority and token audience.

Sources are in docs/partner-center.md. The audience is the resource an access token is issued
for; the scopes are derived from it, so no scope is written out anywhere else.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Cloud:
    """Where one Partner Center cloud lives and which token audience it accepts."""

    name: str
    api_url: str
    authority_url: str
    audience: str

    @property
    def app_scope(self) -> str:
        """The client-credentials scope (app-only tokens)."""
        return f"{self.audience}/.default"

    @property
    def user_scope(self) -> str:
        """The delegated scope of app+user tokens (Secure Application Model)."""
        return f"{self.audience}/user_impersonation"


PUBLIC = Cloud(
    name="public",
    api_url="https://api.partnercenter.microsoft.com",
    authority_url="https://login.microsoftonline.com",
    audience="https://api.partnercenter.microsoft.com",
)
# Partner Center operated by 21Vianet: its own API host, China's Entra authority, and tokens
# issued for the 21Vianet API host itself (Microsoft's PowerShell module asks for
# "{PartnerCenterEndpoint}/user_impersonation" with that host).
CHINA = Cloud(
    name="china",
    api_url="https://partner.partnercenterapi.microsoftonline.cn",
    authority_url="https://login.chinacloudapi.cn",
    audience="https://partner.partnercenterapi.microsoftonline.cn",
)
CLOUDS = {cloud.name: cloud for cloud in (PUBLIC, CHINA)}
# The Azure AD Graph audience Partner Center no longer accepts (retired 2025-08-31).
RETIRED_AUDIENCE = "https://graph.windows.net"


def cloud_named(name: str) -> Cloud:
    """The cloud called `name` (case-insensitive); KeyError for any other."""
    return CLOUDS[name.strip().lower()]
