"""Loopback token endpoints for the tests: the managed-identity stand-in (devstack/local/identity.py)
and one that fails every request."""

from __future__ import annotations

import secrets
from http.server import BaseHTTPRequestHandler

from devstack.local.identity import (  # noqa: F401 (the tests import them from here)
    API_VERSION,
    STORAGE_RESOURCE,
    TOKEN_LIFETIME_SECONDS,
    IdentityEndpoint,
    TokenRequest,
    _LoopbackEndpoint,
)


class BrokenTokenEndpoint(_LoopbackEndpoint):
    """A loopback token endpoint (managed identity or Entra authority) that answers every request
    with ``status`` and a body that is not JSON, as a proxy's or a failing platform's page is."""

    def __init__(self, status: int = 500, content_type: str = "text/html",
                 body: bytes = b"<html><body>502 Bad Gateway</body></html>") -> None:
        self.status, self.content_type, self.body = status, content_type, body
        self.secret = secrets.token_urlsafe(24)
        self.calls = 0
        super().__init__()

    thread_name = "broken-token-endpoint"

    def start(self) -> "BrokenTokenEndpoint":
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                endpoint._answer(self)

            def do_POST(self) -> None:  # noqa: N802
                endpoint._answer(self)

            def log_message(self, *args) -> None:
                pass

        self.serve(Handler)
        return self

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        self.calls += 1
        length = int(handler.headers.get("Content-Length") or 0)
        if length:
            handler.rfile.read(length)
        handler.send_response(self.status)
        handler.send_header("Content-Type", self.content_type)
        handler.send_header("Content-Length", str(len(self.body)))
        handler.end_headers()
        handler.wfile.write(self.body)
