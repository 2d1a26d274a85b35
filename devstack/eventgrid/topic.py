"""A stand-in Event Grid custom topic on loopback: HTTPS, the CloudEvents batch endpoint, a bearer token.

``POST /api/events`` with ``Content-Type: application/cloudevents-batch+json`` and an Entra-shaped
bearer token for ``https://eventgrid.azure.net`` (the loopback managed-identity endpoint issues
one). Like Azurite, it checks the token's audience and lifetime, not its signature. It stores
every event it accepts, in order, prints each one when asked to, and can refuse (429 or 503) for
a while: the fault mode the outbox is tested against. Development only, never deployed.
"""

from __future__ import annotations

import json
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Callable

import jwt

from devstack.local.loopback import LoopbackServer
from devstack.simulator.certificates import issue_server_certificate

AUDIENCE = "https://eventgrid.azure.net"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
MAX_REQUEST_BYTES = 1024 * 1024
_REQUIRED = ("specversion", "id", "source", "type")


@dataclass
class Refusal:
    status: int
    seconds: float
    until: float | None = None  # monotonic; None: from the next request on


@dataclass
class Received:
    """What the topic took: every event in order of arrival, and every request's answer."""

    events: list[dict] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  # time.time() of each event's request


class StandInTopic(LoopbackServer):
    """Run with ``with StandInTopic(folder) as topic:``; point ``PLATFORM_EVENTS__topicEndpointUri``
    at :attr:`endpoint` and trust :attr:`ca_path` (``REQUESTS_CA_BUNDLE``)."""

    def __init__(self, state_dir: Path, *, echo: Callable[[str], None] | None = None, port: int = 0) -> None:
        self.state_dir = Path(state_dir)
        self.echo = echo
        self.port = port
        self.received = Received()
        self._lock = threading.Lock()
        self._refusal: Refusal | None = None
        self.ca_path = ""
        super().__init__()

    thread_name = "stand-in-topic"

    @property
    def endpoint(self) -> str:
        host, port = self.address
        return f"https://{host}:{port}/api/events"

    def refuse(self, status: int, seconds: float, *, from_next_request: bool = False) -> None:
        """Answer every request with ``status`` (429 or 503) for ``seconds`` from now, or from the
        next request on (an outage that meets the next publisher, whenever it comes)."""
        if status not in (429, 503):
            raise ValueError("the stand-in refuses with 429 or 503")
        with self._lock:
            self._refusal = Refusal(status, seconds, None if from_next_request else time.monotonic() + seconds)

    def refused_since(self) -> float | None:
        """When (monotonic) the current refusal began: ``None`` before its first request."""
        with self._lock:
            refusal = self._refusal
        return None if refusal is None or refusal.until is None else refusal.until - refusal.seconds

    def events(self) -> list[dict]:
        with self._lock:
            return list(self.received.events)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict]:
        """The events received once there are at least ``count`` (or when ``timeout`` passed)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end and len(self.events()) < count:
            time.sleep(0.01)
        return self.events()

    def start(self) -> "StandInTopic":
        certificate = issue_server_certificate(self.state_dir, ["127.0.0.1"])
        self.ca_path = str(certificate.ca_path)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(certificate.cert_path, certificate.key_path)
        topic = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                status, body = topic._answer(self)
                payload = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                if status in (429, 503):
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.serve(Handler, port=self.port, context=context)
        return self

    def _answer(self, handler: BaseHTTPRequestHandler) -> tuple[int, dict | None]:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        with self._lock:
            refusal = self._refusal
            if refusal is not None and refusal.until is None:
                refusal.until = time.monotonic() + refusal.seconds
        if refusal is not None and time.monotonic() < refusal.until:
            return self._answered(refusal.status, _error("Throttled" if refusal.status == 429 else "ServiceUnavailable",
                                                         "the stand-in topic refuses for now"))
        if handler.path.split("?")[0] != "/api/events":
            return self._answered(404, _error("NotFound", "the topic's endpoint is /api/events"))
        problem = _token_problem(handler.headers.get("Authorization", ""))
        if problem:
            return self._answered(401, _error("Unauthorized", problem))
        if not handler.headers.get("Content-Type", "").startswith(BATCH_CONTENT_TYPE):
            return self._answered(415, _error("UnsupportedMediaType", f"send {BATCH_CONTENT_TYPE}"))
        if length > MAX_REQUEST_BYTES:
            return self._answered(413, _error("RequestEntityTooLarge", "a request carries at most 1 MB"))
        try:
            events = json.loads(raw)
        except ValueError:
            return self._answered(400, _error("BadRequest", "the body is not JSON"))
        if not isinstance(events, list) or not all(isinstance(e, dict) and all(e.get(k) for k in _REQUIRED)
                                                   for e in events):
            return self._answered(400, _error("BadRequest", f"a batch is an array of CloudEvents with {_REQUIRED}"))
        with self._lock:
            self.received.events.extend(events)
            self.received.arrived.extend([time.time()] * len(events))
        if self.echo:
            for event in events:
                self.echo(f"  event {event['type']} {event.get('subject', '')} "
                          f"version {event.get('data', {}).get('version')}")
        return self._answered(200, None)

    def _answered(self, status: int, body: dict | None) -> tuple[int, dict | None]:
        with self._lock:
            self.received.answers.append(status)
        return status, body


def _token_problem(authorization: str) -> str:
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token:
        return "a bearer token is required"
    try:
        claims = jwt.decode(token, options={"verify_signature": False, "verify_aud": False, "verify_exp": False})
    except jwt.PyJWTError:
        return "the bearer token is not a JWT"
    if claims.get("aud") not in (AUDIENCE, AUDIENCE + "/"):
        return f"the token is for {claims.get('aud')!r}, not {AUDIENCE}"
    if float(claims.get("exp", 0)) < time.time():
        return "the token has expired"
    return ""


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}
