"""A stand-in for App Service Authentication (Easy Auth) in front of the local functions.

It does what the platform does for the app (docs/local-development.md#signing-in): strips every
``X-MS-CLIENT-PRINCIPAL*`` header a caller sends, serves ``/.auth/login/aad`` (here: signs the
local operator in at once, no Entra ID), ``/.auth/me`` and ``/.auth/logout``, and passes the
signed-in operator's principal to the functions on every request that carries the session cookie.
Whoever serves with it sets ``WEBSITE_AUTH_ENABLED=True``, as the platform does.
"""

from __future__ import annotations

import json
import secrets
import uuid
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Iterable
from urllib.parse import parse_qs

from shared.functions.principal import OPERATOR, encode

SESSION_COOKIE = "AppServiceAuthSession"
DEFAULT_ROLES = (OPERATOR,)


@dataclass(frozen=True)
class LocalOperator:
    """Who the local stack signs in: a name, a made-up object id, and the app roles it is started with."""

    name: str = "local-operator@localhost"
    roles: tuple[str, ...] = DEFAULT_ROLES
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def describe(self) -> str:
        return f"{self.name} (object id {self.object_id}; roles {', '.join(self.roles) or 'none'})"


class EasyAuth:
    """WSGI middleware: the Easy Auth module in front of ``app``, signing in ``operator``."""

    def __init__(self, app, operator: LocalOperator) -> None:
        self.app = app
        self.operator = operator
        self.session = secrets.token_urlsafe(24)  # a session is this server's: restart, sign in again

    def __call__(self, environ: dict, start_response) -> Iterable[bytes]:
        for key in [k for k in environ if k.startswith("HTTP_X_MS_CLIENT_PRINCIPAL")]:
            del environ[key]  # a caller never speaks for the platform
        path = environ.get("PATH_INFO", "")
        if path == "/.auth/login/aad":
            target = _local_path(parse_qs(environ.get("QUERY_STRING", "")).get("post_login_redirect_uri", ["/"])[0])
            start_response("302 Found", [("Location", target), ("Cache-Control", "no-store"),
                                         ("Set-Cookie", f"{SESSION_COOKIE}={self.session}; Path=/; HttpOnly; "
                                                        "SameSite=Lax")])
            return [b""]
        if path == "/.auth/logout":
            start_response("302 Found", [("Location", "/"), ("Set-Cookie", f"{SESSION_COOKIE}=; Path=/; Max-Age=0")])
            return [b""]
        signed_in = self._signed_in(environ)
        if path == "/.auth/me":
            body = json.dumps([{"provider_name": "aad", "user_id": self.operator.name}] if signed_in else [])
            start_response("200 OK" if signed_in else "401 Unauthorized", [("Content-Type", "application/json")])
            return [body.encode()]
        if signed_in:
            for name, value in encode(self.operator.name, self.operator.object_id, self.operator.roles).items():
                environ["HTTP_" + name.upper().replace("-", "_")] = value
        return self.app(environ, start_response)

    def _signed_in(self, environ: dict) -> bool:
        cookie = SimpleCookie()
        try:
            cookie.load(environ.get("HTTP_COOKIE", ""))
        except Exception:  # a malformed cookie header is no session
            return False
        morsel = cookie.get(SESSION_COOKIE)
        return morsel is not None and secrets.compare_digest(morsel.value, self.session)


def _local_path(target: str) -> str:
    """Only a path on this site: never an open redirect to another one."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"
