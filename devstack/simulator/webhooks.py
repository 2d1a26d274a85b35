"""Simulated Partner Center webhooks: registrations, signed events, delivery with retries, and
deliberately bad events for testing a receiver.

Events are signed as Partner Center signs them: RSA-SHA256 over the raw UTF-8 body, the base64
signature in `Authorization: Signature …` (or `x-ms-signature` when the registration asks for
it), and `X-MS-Certificate-Url` naming the signing certificate, which the simulator serves on its
own HTTPS host at `/cert/pcnotifications-dispatch.cer` (issued by its local CA).
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devstack.simulator.certificates import SigningCertificate, issue_signing_certificates

RESELLER_RELATIONSHIP_ACCEPTED = "reseller-relationship-accepted-by-customer"
INDIRECT_RESELLER_RELATIONSHIP_ACCEPTED = "indirect-reseller-relationship-accepted-by-customer"
TEST_CREATED = "test-created"
# Event names the registration accepts (a subset of Partner Center's list, enough for the sync).
EVENT_NAMES = (
    TEST_CREATED, RESELLER_RELATIONSHIP_ACCEPTED, INDIRECT_RESELLER_RELATIONSHIP_ACCEPTED,
    "dap-admin-relationship-approved", "dap-admin-relationship-terminated", "subscription-updated",
    "invoice-ready",
)
CERTIFICATE_PATHS = {"trusted": "pcnotifications-dispatch.cer", "untrusted": "untrusted-dispatch.cer"}
# What `send_event` can send, besides a proper event.
VARIANTS = (
    "signed", "unsigned", "forged", "tampered", "wrong-algorithm", "malformed", "untrusted-certificate",
    "foreign-certificate-url", "oversize",
)
DELIVERY_TIMEOUT = 5.0
OVERSIZE_BYTES = 64 * 1024


class RegistrationError(ValueError):
    """A registration request Partner Center would refuse; `status` is the HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Delivery:
    """One POST of an event to a receiver, and what came back."""

    id: str
    event_name: str
    url: str
    variant: str
    attempt: int
    status: int | None = None
    error: str = ""
    response_body: str = ""
    at: str = ""
    body: bytes = field(default=b"", repr=False)
    headers: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "eventName": self.event_name, "url": self.url, "variant": self.variant,
                "attempt": self.attempt, "status": self.status, "error": self.error,
                "responseBody": self.response_body, "at": self.at}


class SimulatedWebhooks:
    """Per-partner registrations and deliveries. Thread-safe.

    Nothing is signed until the server calls :meth:`start` with its base URL and state folder
    (the signing certificate comes from the folder's CA). Deliveries run on background threads
    and are retried `attempts` times with doubling back-off from `backoff` seconds.
    """

    def __init__(self, attempts: int = 10, backoff: float = 1.0) -> None:
        self._lock = threading.Lock()
        self._registrations: dict[str, dict[str, Any]] = {}
        self._validation_events: dict[str, dict[str, Any]] = {}
        self._deliveries: list[Delivery] = []
        self._threads: set[threading.Thread] = set()
        self._base_url: str | None = None
        self._state_dir: Path | None = None
        self._certificates: tuple[SigningCertificate, SigningCertificate] | None = None
        self._forged_key: rsa.RSAPrivateKey | None = None
        self.attempts = attempts
        self.backoff = backoff

    def start(self, base_url: str, state_dir: Path) -> None:
        """Sign with certificates from `state_dir`'s CA, served under `base_url`."""
        with self._lock:
            self._base_url = base_url
            self._state_dir = state_dir

    def set_delivery(self, attempts: int | None = None, backoff: float | None = None) -> None:
        """Delivery attempts per event (Partner Center: 10) and the first retry's delay in seconds."""
        if attempts is not None:
            if attempts < 1:
                raise ValueError("attempts must be at least 1")
            self.attempts = attempts
        if backoff is not None:
            if backoff < 0:
                raise ValueError("backoff cannot be negative")
            self.backoff = float(backoff)

    # --- registration (the /webhooks/v1/registration API) ---------------------------------------

    def is_registered(self, partner_tenant_id: str) -> bool:
        with self._lock:
            return partner_tenant_id in self._registrations

    def registration(self, partner_tenant_id: str) -> dict[str, Any]:
        with self._lock:
            registration = self._registrations.get(partner_tenant_id)
        if registration is None:
            raise RegistrationError(404, "No webhook registration exists for this partner.")
        return dict(registration)

    def unregister(self, partner_tenant_id: str) -> None:
        """Remove the registration (DELETE); 404 when there is none."""
        with self._lock:
            if self._registrations.pop(partner_tenant_id, None) is None:
                raise RegistrationError(404, "No webhook registration exists for this partner.")

    def register(self, partner_tenant_id: str, body: Any, *, update: bool) -> dict[str, Any]:
        """Create (POST; 409 when one exists) or replace (PUT; 404 when none) the registration."""
        url, events, ms_signature_header = _registration_fields(body)
        with self._lock:
            exists = partner_tenant_id in self._registrations
            if exists and not update:
                raise RegistrationError(409, "Registration already exists, use the PUT method to update a registration.")
            if update and not exists:
                raise RegistrationError(404, "No webhook registration exists for this partner.")
            registration = {
                "SubscriberId": self._registrations.get(partner_tenant_id, {}).get("SubscriberId") or str(uuid.uuid4()),
                "WebhookUrl": url,
                "WebhookEvents": events,
                "SignatureTokenToMsSignatureHeader": ms_signature_header,
                "LastModifiedTimestamp": _utc_text(),
            }
            self._registrations[partner_tenant_id] = registration
            return dict(registration)

    def send_validation_event(self, partner_tenant_id: str) -> str:
        """Deliver a `test-created` event (with retries); returns its correlation id."""
        registration = self.registration(partner_tenant_id)
        if TEST_CREATED not in registration["WebhookEvents"]:
            raise RegistrationError(400, "Register for the test-created event before sending a validation event.")
        correlation_id = str(uuid.uuid4())
        with self._lock:
            self._validation_events[correlation_id] = {
                "correlationId": correlation_id, "partnerId": partner_tenant_id, "status": "pending",
                "callbackUrl": registration["WebhookUrl"], "results": [],
            }
        resource = f"{self._base()}/webhooks/v1/registration/validationEvents/{correlation_id}"
        event = _event(TEST_CREATED, resource, "test")
        self._deliver_in_background(partner_tenant_id, event, correlation_id)
        return correlation_id

    def validation_event(self, partner_tenant_id: str, correlation_id: str) -> dict[str, Any]:
        with self._lock:
            found = self._validation_events.get(correlation_id)
            if found is None or found["partnerId"] != partner_tenant_id:
                raise RegistrationError(404, f"No validation event {correlation_id}.")
            return json.loads(json.dumps(found))

    # --- events ---------------------------------------------------------------------------------

    def relationship_accepted(self, partner_tenant_id: str, tenant_id: str, *, indirect: bool) -> None:
        """A customer accepted the partner's relationship: deliver the event if it is registered."""
        name = INDIRECT_RESELLER_RELATIONSHIP_ACCEPTED if indirect else RESELLER_RELATIONSHIP_ACCEPTED
        with self._lock:
            registration = self._registrations.get(partner_tenant_id)
        if registration is None or name not in registration["WebhookEvents"] or self._base_url is None:
            return
        self._deliver_in_background(partner_tenant_id, _event(name, self._customer_uri(tenant_id), "customer"))

    def send_event(self, partner_tenant_id: str, variant: str = "signed", *, tenant_id: str | None = None,
                   event_name: str = RESELLER_RELATIONSHIP_ACCEPTED, url: str | None = None,
                   changed_at: str | None = None) -> Delivery:
        """POST one event now, once, without retries, and return what the receiver answered.

        `variant`: "signed" (proper), "unsigned", "forged" (signed by a key the certificate does
        not hold), "tampered" (body changed after signing), "wrong-algorithm" (declares
        rsa-sha1), "malformed" (signed, not JSON), "untrusted-certificate" (a look-alike
        certificate outside the CA), "foreign-certificate-url" (the real certificate named via
        `localhost` instead of the simulator's address), "oversize" (signed, padded to 64 KiB).
        `changed_at`: the event's ResourceChangeUtcDate (default now; an old one is a replay).
        """
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}")
        target = url or self.registration(partner_tenant_id)["WebhookUrl"]
        resource = self._customer_uri(tenant_id or str(uuid.uuid4()))
        body = _event(event_name, resource, "customer", changed_at)
        if variant == "malformed":
            body = body[: len(body) // 2]
        elif variant == "oversize":
            body = body[:-1] + b" " * OVERSIZE_BYTES + b"}"
        headers = self._signed_headers(partner_tenant_id, body, variant)
        if variant == "tampered":
            body = body.replace(resource.encode(), self._customer_uri(str(uuid.uuid4())).encode())
        return self._post(target, event_name, variant, 1, body, headers)

    def replay(self, partner_tenant_id: str | None = None) -> Delivery:
        """POST the last event sent (to any partner, or to this one's URL) again, byte for byte."""
        with self._lock:
            candidates = [d for d in self._deliveries if d.body and
                          (partner_tenant_id is None or d.url == self._registrations.get(partner_tenant_id, {}).get("WebhookUrl"))]
        if not candidates:
            raise ValueError("no event has been sent yet")
        last = candidates[-1]
        return self._post(last.url, last.event_name, "replayed", 1, last.body, last.headers)

    def deliveries(self) -> list[Delivery]:
        """Every delivery attempt so far, oldest first."""
        with self._lock:
            return list(self._deliveries)

    def wait(self, timeout: float = 30.0) -> bool:
        """Wait until background deliveries (with their retries) are done; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                running = [thread for thread in self._threads if thread.is_alive()]
            if not running:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            running[0].join(remaining)

    def certificate(self, name: str) -> bytes | None:
        """The DER bytes of a served certificate (`trusted` or `untrusted` file names)."""
        for kind, path in CERTIFICATE_PATHS.items():
            if path == name:
                trusted, untrusted = self._signing_certificates()
                return (trusted if kind == "trusted" else untrusted).der
        return None

    # --- internals --------------------------------------------------------------------------------

    def _deliver_in_background(self, partner_tenant_id: str, body: bytes, correlation_id: str | None = None) -> None:
        registration = self.registration(partner_tenant_id)
        headers = self._signed_headers(partner_tenant_id, body, "signed")
        event_name = json.loads(body)["EventName"]

        def deliver() -> None:
            try:
                for attempt in range(1, self.attempts + 1):
                    delivery = self._post(registration["WebhookUrl"], event_name, "signed", attempt, body, headers)
                    if correlation_id:
                        self._record_validation(correlation_id, delivery, final=delivery.delivered or
                                                attempt == self.attempts)
                    if delivery.delivered:
                        return
                    if attempt < self.attempts:
                        time.sleep(min(self.backoff * 2 ** (attempt - 1), 60.0))
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        thread = threading.Thread(target=deliver, name=f"webhook-{event_name}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _record_validation(self, correlation_id: str, delivery: Delivery, *, final: bool) -> None:
        with self._lock:
            found = self._validation_events[correlation_id]
            found["results"].append({
                "responseCode": str(delivery.status) if delivery.status is not None else "",
                "responseMessage": delivery.error or delivery.response_body[:200],
                "systemError": delivery.status is None,
                "dateTimeUtc": delivery.at,
            })
            if final:
                found["status"] = "completed" if delivery.delivered else "failed"

    def _post(self, url: str, event_name: str, variant: str, attempt: int, body: bytes,
              headers: dict[str, str]) -> Delivery:
        delivery = Delivery(str(uuid.uuid4()), event_name, url, variant, attempt, at=_utc_text(), body=body,
                            headers=headers)
        try:
            response = requests.post(url, data=body, headers=headers, timeout=DELIVERY_TIMEOUT, allow_redirects=False)
            delivery.status = response.status_code
            delivery.response_body = response.text[:2000]
        except requests.RequestException as exc:
            delivery.error = f"{type(exc).__name__}: {exc}"[:500]
        with self._lock:
            self._deliveries.append(delivery)
        return delivery

    def _signed_headers(self, partner_tenant_id: str, body: bytes, variant: str) -> dict[str, str]:
        trusted, untrusted = self._signing_certificates()
        key: rsa.RSAPrivateKey = trusted.key
        certificate_url = f"{self._base()}/cert/{CERTIFICATE_PATHS['trusted']}"
        if variant == "forged":
            key = self._forged()
        elif variant == "untrusted-certificate":
            key, certificate_url = untrusted.key, f"{self._base()}/cert/{CERTIFICATE_PATHS['untrusted']}"
        elif variant == "foreign-certificate-url":
            certificate_url = certificate_url.replace("://127.0.0.1:", "://localhost:", 1)
        signature = base64.b64encode(key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode("ascii")
        headers = {
            "Content-Type": "application/json",
            "X-MS-Certificate-Url": certificate_url,
            "X-MS-Signature-Algorithm": "rsa-sha1" if variant == "wrong-algorithm" else "rsa-sha256",
        }
        with self._lock:
            ms_signature_header = self._registrations.get(partner_tenant_id, {}).get("SignatureTokenToMsSignatureHeader")
        if variant != "unsigned":
            if ms_signature_header:
                headers["x-ms-signature"] = signature
            else:
                headers["Authorization"] = f"Signature {signature}"
        return headers

    def _signing_certificates(self) -> tuple[SigningCertificate, SigningCertificate]:
        with self._lock:
            if self._certificates is None:
                if self._state_dir is None:
                    raise RuntimeError("the simulator is not running: webhooks need its certificate URL")
                self._certificates = issue_signing_certificates(self._state_dir)
            return self._certificates

    def _forged(self) -> rsa.RSAPrivateKey:
        with self._lock:
            if self._forged_key is None:
                self._forged_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            return self._forged_key

    def _base(self) -> str:
        if self._base_url is None:
            raise RuntimeError("the simulator is not running: webhooks need its URL")
        return self._base_url

    def _customer_uri(self, tenant_id: str) -> str:
        return f"{self._base()}/v1/customers/{tenant_id}"


def _registration_fields(body: Any) -> tuple[str, list[str], bool]:
    if not isinstance(body, dict):
        raise RegistrationError(400, "The registration must be a JSON object.")
    fields = {key.lower(): value for key, value in body.items()}  # .NET binds JSON without regard to case
    url, events = fields.get("webhookurl"), fields.get("webhookevents")
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        raise RegistrationError(400, "WebhookUrl must be an absolute http(s) URL.")
    if not isinstance(events, list) or not events or not all(isinstance(name, str) for name in events):
        raise RegistrationError(400, "WebhookEvents must be a non-empty list of event names.")
    unknown = [name for name in events if name not in EVENT_NAMES]
    if unknown:
        raise RegistrationError(400, f"Unknown webhook event(s): {', '.join(unknown)}.")
    return url, list(dict.fromkeys(events)), bool(fields.get("signaturetokentomssignatureheader", False))


def _event(name: str, resource_uri: str, resource_name: str, changed_at: str | None = None) -> bytes:
    return json.dumps({
        "EventName": name,
        "ResourceUri": resource_uri,
        "ResourceName": resource_name,
        "AuditUri": None,
        "ResourceChangeUtcDate": changed_at or _utc_text(),
    }).encode("utf-8")


def _utc_text() -> str:
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}0+00:00"

