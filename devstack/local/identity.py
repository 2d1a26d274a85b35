"""A loopback stand-in for the App Service managed-identity endpoint that Azure Functions offers
(the tests', the demo's and the benchmarks' managed identity).

azure-identity's ``ManagedIdentityCredential`` (through MSAL) calls it when ``IDENTITY_ENDPOINT``
and ``IDENTITY_HEADER`` are set, as they are on a Function App: ``GET <IDENTITY_ENDPOINT>
?api-version=2019-08-01&resource=<resource>[&client_id=<id>]`` with the ``X-IDENTITY-HEADER``
secret. It answers ``{"access_token", "expires_on", "resource", "token_type", "client_id"}``.

The token is an RS256 JWT shaped like Entra's: Azurite's basic OAuth checks the ``iss`` prefix
(``https://sts.windows.net/``), the ``aud`` (``https://storage.azure.com`` among others) and
``nbf``/``exp``/``iat``, but not the signature.
"""

from __future__ import annotations

import json
import secrets
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.local.loopback import LoopbackServer

API_VERSION = "2019-08-01"
STORAGE_RESOURCE = "https://storage.azure.com"
TOKEN_LIFETIME_SECONDS = 3600


@dataclass(frozen=True)
class TokenRequest:
    """One call the endpoint received."""

    resource: str
    client_id: str
    api_version: str
    header_ok: bool
    status: int


class _LoopbackEndpoint(LoopbackServer):
    """Where a token endpoint on loopback listens, and the settings that point the code at it."""

    secret: str
    thread_name = "identity-endpoint"

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/msi/token"

    @property
    def environment(self) -> dict[str, str]:
        """What a Function App's platform sets for its code."""
        return {"IDENTITY_ENDPOINT": self.url, "IDENTITY_HEADER": self.secret}


class IdentityEndpoint(_LoopbackEndpoint):
    """The endpoint on a free loopback port, in a thread; :attr:`requests` records every call."""

    def __init__(self, tenant_id: str | None = None) -> None:
        self.tenant_id = tenant_id or str(uuid.uuid4())
        self.secret = secrets.token_urlsafe(24)
        self.requests: list[TokenRequest] = []
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        super().__init__()

    def token(self, resource: str, client_id: str, *, issued_at: int | None = None) -> str:
        """A signed access token for ``resource`` as the identity ``client_id``."""
        now = int(time.time()) if issued_at is None else issued_at
        claims = {
            "aud": resource, "iss": f"https://sts.windows.net/{self.tenant_id}/", "iat": now, "nbf": now,
            "exp": now + TOKEN_LIFETIME_SECONDS, "appid": client_id, "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
            "tid": self.tenant_id, "sub": client_id, "ver": "1.0", "idtyp": "app",
        }
        return jwt.encode(claims, self._key, algorithm="RS256")

    def start(self) -> "IdentityEndpoint":
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                endpoint._answer(self)

            def log_message(self, *args) -> None:
                pass

        self.serve(Handler)
        return self

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        query = {name: values[0] for name, values in parse_qs(parts.query).items()}
        resource = query.get("resource", "")
        client_id = query.get("client_id", "")
        header_ok = secrets.compare_digest(handler.headers.get("X-IDENTITY-HEADER", ""), self.secret)
        if parts.path != "/msi/token":
            status, body = 404, {"message": "not found"}
        elif not header_ok:
            status, body = 401, {"statusCode": 401, "message": "X-IDENTITY-HEADER is missing or wrong"}
        elif query.get("api-version") != API_VERSION or not resource:
            status, body = 400, {"statusCode": 400, "message": "api-version 2019-08-01 and resource are required"}
        else:
            now = int(time.time())
            status, body = 200, {
                "access_token": self.token(resource, client_id or "system-assigned", issued_at=now),
                "expires_on": str(now + TOKEN_LIFETIME_SECONDS), "resource": resource, "token_type": "Bearer",
                "client_id": client_id or "system-assigned",
            }
        self.requests.append(TokenRequest(resource, client_id, query.get("api-version", ""), header_ok, status))
        payload = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)
