"""Who calls an operator route, and may they (docs/http-api.md#sign-in-and-roles).

App Service Authentication (Easy Auth) signs the operator in with Entra ID and passes the
principal in ``X-MS-CLIENT-PRINCIPAL``: base64 JSON with ``claims`` (``[{typ, val}]``),
``name_typ`` and ``role_typ``; it strips any such header a caller sends. Only where it is on
(``WEBSITE_AUTH_ENABLED=True``, set by the platform) is the header trusted; elsewhere operator
routes refuse everyone: there is no bypass.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import azure.functions as func

from shared.settings import Settings

from .problems import Problem

READER, OPERATOR = "Sync.Reader", "Sync.Operator"
# The Functions auth level of every signed-in route: no key of any kind opens it (a host key
# would otherwise open them all); :func:`require` authorizes the principal instead.
SIGNED_IN = func.AuthLevel.ANONYMOUS
# An operator may do everything a reader may.
_IMPLIES = {OPERATOR: {OPERATOR, READER}, READER: {READER}}

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
NAME_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
ID_HEADER = "X-MS-CLIENT-PRINCIPAL-ID"
# Entra ID's claim types, used when the principal names no other (App Service's defaults).
ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
NAME_CLAIMS = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
# A real principal is a few KiB; anything far larger is not App Service's.
_MAX_HEADER_CHARS = 64 * 1024


@dataclass(frozen=True)
class Principal:
    """A signed-in person (or app): display name, Entra object id and app roles."""

    name: str
    object_id: str
    roles: frozenset[str]

    def may(self, role: str) -> bool:
        return any(role in _IMPLIES.get(held, {held}) for held in self.roles)

    @property
    def signature(self) -> str:
        """How a decision is recorded: name and object id, so a renamed person stays identifiable."""
        return f"{self.name} ({self.object_id})"[:200]

    def as_dict(self) -> dict:
        return {"name": self.name, "objectId": self.object_id, "roles": sorted(self.roles),
                "operator": self.may(OPERATOR)}


def principal_of(req: func.HttpRequest, settings: Settings) -> Principal | None:
    """The signed-in principal, ``None`` when there is none; 401 where App Service Authentication is off."""
    if not settings.app_service_auth_enabled:
        raise Problem(401, "unauthenticated",
                      "App Service Authentication is not on (WEBSITE_AUTH_ENABLED is not True), so no caller "
                      "can be signed in: operator routes refuse every request (docs/deploy.md#operators-sign-in)")
    encoded = (req.headers.get(PRINCIPAL_HEADER) or "").strip()
    if not encoded:
        return None
    return _decode(encoded, req)


def require(req: func.HttpRequest, settings: Settings, role: str) -> Principal:
    """The principal, if it holds ``role``: 401 without a principal, 403 naming the role otherwise."""
    principal = principal_of(req, settings)
    if principal is None:
        raise Problem(401, "unauthenticated", "sign in first: this route needs a signed-in principal "
                                              f"with the {role} role (/.auth/login/aad)")
    if not principal.may(role):
        raise Problem(403, "forbidden", f"{principal.name} lacks the {role} app role this route needs")
    if req.method.upper() not in ("GET", "HEAD"):
        _same_site(req)
    return principal


def _same_site(req: func.HttpRequest) -> None:
    """A browser's session cookie goes with any site's form post: an action whose ``Origin`` is
    another host is refused (scripts send no ``Origin``; the console's own calls send its host)."""
    origin = (req.headers.get("Origin") or "").strip()
    if not origin:
        return
    hosts = {(req.headers.get(name) or "").strip().lower() for name in ("Host", "X-Forwarded-Host", "X-Original-Host")}
    if urlsplit(origin).netloc.lower() not in hosts - {""}:
        raise Problem(403, "forbidden", f"an action from another site ({origin[:100]}) is refused")


def _decode(encoded: str, req: func.HttpRequest) -> Principal:
    if len(encoded) > _MAX_HEADER_CHARS:
        raise Problem(401, "unauthenticated", f"{PRINCIPAL_HEADER} is too large to be App Service's")
    try:
        document = json.loads(base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=False))
        claims = [(str(c["typ"]), str(c["val"])) for c in document.get("claims") or []]
    except (binascii.Error, ValueError, TypeError, KeyError, AttributeError):
        raise Problem(401, "unauthenticated", f"{PRINCIPAL_HEADER} is not base64 JSON with claims") from None
    role_types = {document.get("role_typ") or ROLE_CLAIMS[0], *ROLE_CLAIMS}
    name_types = [document.get("name_typ"), *NAME_CLAIMS]
    roles = frozenset(value for kind, value in claims if kind in role_types)
    name = (req.headers.get(NAME_HEADER) or _first(claims, name_types) or "").strip()
    object_id = (_first(claims, OBJECT_ID_CLAIMS) or req.headers.get(ID_HEADER) or "").strip()
    if not name and not object_id:
        raise Problem(401, "unauthenticated", f"{PRINCIPAL_HEADER} names nobody (no name, no object id)")
    return Principal(name[:120] or object_id, object_id[:64] or "unknown", roles)


def _first(claims: list[tuple[str, str]], kinds: list) -> str | None:
    for kind in kinds:
        for claim_kind, value in claims:
            if kind and claim_kind == kind and value.strip():
                return value
    return None


def encode(name: str, object_id: str, roles: list[str] | tuple[str, ...]) -> dict[str, str]:
    """The headers App Service sends for this principal (the local stand-in and tests send the same)."""
    claims = [{"typ": "name", "val": name}, {"typ": OBJECT_ID_CLAIMS[0], "val": object_id},
              *({"typ": "roles", "val": role} for role in roles)]
    document = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return {PRINCIPAL_HEADER: base64.b64encode(json.dumps(document).encode()).decode(),
            NAME_HEADER: name, ID_HEADER: object_id}
