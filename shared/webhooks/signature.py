"""Is this webhook event from Partner Center? RSA-SHA256 over the raw body, checked against the
certificate named by ``X-MS-Certificate-Url``.

The certificate is accepted only when its URL is https on an allow-listed host, it is valid now,
it chains to a configured trust anchor, and its issuer is the configured organization
("Microsoft Corporation" in production). Verified certificates are cached by URL.
"""

from __future__ import annotations

import base64
import binascii
import logging
import ssl
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Mapping
from urllib.parse import urlsplit

import requests
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

ALGORITHM = "rsa-sha256"
SIGNATURE_SCHEME = "signature"
# A certificate file is a few KiB; a chain a little more. Anything bigger is refused unread.
MAX_CERTIFICATE_BYTES = 64 * 1024
CERTIFICATE_TIMEOUT = (2.0, 3.0)  # connect, read: the sender waits for our answer meanwhile
CACHE_SIZE = 16
CACHE_SECONDS = 3600.0
MAX_CHAIN_LENGTH = 5


class SignatureRejected(Exception):
    """The event's authenticity could not be established. ``reason`` is a stable name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


# The reasons, as answered (see shared/functions/webhooks.py for their HTTP statuses).
SIGNATURE_MISSING = "signature-missing"
ALGORITHM_UNSUPPORTED = "signature-algorithm-unsupported"
CERTIFICATE_URL_REFUSED = "certificate-url-refused"
CERTIFICATE_UNAVAILABLE = "certificate-unavailable"
CERTIFICATE_UNTRUSTED = "certificate-untrusted"
SIGNATURE_INVALID = "signature-invalid"


@dataclass(frozen=True)
class _Cached:
    certificate: x509.Certificate
    expires: float  # time.monotonic()


class SignatureVerifier:
    """Verifies webhook signatures. Thread-safe; keep one per process (it caches certificates).

    ``allowed_hosts`` are host names, or ``host:port`` for a non-default port (the simulator);
    ``trust_anchors`` PEM files of trusted CA certificates (empty: the system trust store);
    ``issuer_organization`` the O= the signing certificate's issuer must carry.
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        trust_anchors: Iterable[str] = (),
        issuer_organization: str = "Microsoft Corporation",
        *,
        fetch: Callable[[str], bytes] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
    ) -> None:
        self.allowed_hosts = frozenset(host.strip().lower() for host in allowed_hosts if host.strip())
        self.anchor_files = tuple(trust_anchors) or (_system_trust_store(),)
        self.issuer_organization = issuer_organization
        self._fetch = fetch or fetch_certificate
        self._clock = clock
        self._anchors: list[x509.Certificate] | None = None
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, headers: Mapping[str, str], body: bytes) -> x509.Certificate:
        """Check the event's signature; returns the signing certificate or raises
        :class:`SignatureRejected`. ``headers`` may use any case."""
        lowered = {name.lower(): value for name, value in headers.items()}
        signature = _signature(lowered)
        algorithm = lowered.get("x-ms-signature-algorithm", "").strip()
        if not algorithm:
            raise SignatureRejected(SIGNATURE_MISSING, "the X-MS-Signature-Algorithm header is missing")
        if algorithm.lower() != ALGORITHM:
            raise SignatureRejected(ALGORITHM_UNSUPPORTED,
                                    f"X-MS-Signature-Algorithm is {algorithm[:40]!r}; only {ALGORITHM} is accepted")
        url = lowered.get("x-ms-certificate-url", "").strip()
        if not url:
            raise SignatureRejected(SIGNATURE_MISSING, "the X-MS-Certificate-Url header is missing")
        certificate = self.certificate(url)
        public_key = certificate.public_key()
        try:
            public_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise SignatureRejected(SIGNATURE_INVALID,
                                    "the signature does not match the body and the signing certificate") from None
        return certificate

    def certificate(self, url: str) -> x509.Certificate:
        """The verified signing certificate at ``url`` (cached), or :class:`SignatureRejected`."""
        self.check_url(url)
        with self._lock:
            cached = self._cache.get(url)
            if cached is not None and cached.expires > time.monotonic():
                self._cache.move_to_end(url)
                return cached.certificate
        try:
            content = self._fetch(url)
        except (requests.RequestException, ValueError) as exc:
            log.warning("webhook signing certificate %s could not be fetched: %s", url, exc)
            raise SignatureRejected(CERTIFICATE_UNAVAILABLE,
                                    f"the signing certificate could not be fetched ({type(exc).__name__})") from None
        certificate, intermediates = _parse_certificates(content)
        self._check_trust(certificate, intermediates)
        now = self._clock()
        # Never keep a certificate past its own expiry.
        lifetime = min(CACHE_SECONDS, (certificate.not_valid_after_utc - now).total_seconds())
        with self._lock:
            self._cache[url] = _Cached(certificate, time.monotonic() + lifetime)
            self._cache.move_to_end(url)
            while len(self._cache) > CACHE_SIZE:
                self._cache.popitem(last=False)
        return certificate

    def check_url(self, url: str) -> None:
        """Refuse a certificate URL that is not https on an allow-listed host (before any fetch)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise SignatureRejected(CERTIFICATE_URL_REFUSED, "X-MS-Certificate-Url is not a valid URL") from None
        if parts.scheme.lower() != "https":
            raise SignatureRejected(CERTIFICATE_URL_REFUSED, "X-MS-Certificate-Url must be an https URL")
        if parts.username is not None or parts.password is not None or not parts.hostname:
            raise SignatureRejected(CERTIFICATE_URL_REFUSED, "X-MS-Certificate-Url must name a host and no user")
        host = parts.hostname.lower()
        allowed = f"{host}:{port}" in self.allowed_hosts if port not in (None, 443) else host in self.allowed_hosts
        if not allowed:
            raise SignatureRejected(CERTIFICATE_URL_REFUSED,
                                    f"the certificate host {parts.netloc[:100]!r} is not on WEBHOOK_CERTIFICATE_HOSTS")

    def _check_trust(self, certificate: x509.Certificate, intermediates: list[x509.Certificate]) -> None:
        now = self._clock()
        if not isinstance(certificate.public_key(), rsa.RSAPublicKey):
            raise SignatureRejected(CERTIFICATE_UNTRUSTED, "the signing certificate does not hold an RSA key")
        organizations = [a.value for a in certificate.issuer.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        if self.issuer_organization not in organizations:
            raise SignatureRejected(CERTIFICATE_UNTRUSTED,
                                    f"the signing certificate's issuer is not {self.issuer_organization!r}")
        if not _valid_at(certificate, now):
            raise SignatureRejected(CERTIFICATE_UNTRUSTED, "the signing certificate is expired or not yet valid")
        if not _chains_to(certificate, intermediates, self.anchors(), now):
            raise SignatureRejected(CERTIFICATE_UNTRUSTED,
                                    "the signing certificate does not chain to a trusted root (WEBHOOK_TRUST_ANCHORS)")

    def anchors(self) -> list[x509.Certificate]:
        """The trusted CA certificates, read once."""
        if self._anchors is None:
            anchors = []
            for path in self.anchor_files:
                try:
                    anchors.extend(x509.load_pem_x509_certificates(Path(path).read_bytes()))
                except (OSError, ValueError) as exc:
                    log.error("webhook trust anchors %s could not be read: %s", path, exc)
            self._anchors = anchors
        return self._anchors


def fetch_certificate(url: str) -> bytes:
    """GET the certificate file: no redirects (they could leave the allow-listed host), a short
    timeout, and at most :data:`MAX_CERTIFICATE_BYTES`."""
    with requests.get(url, timeout=CERTIFICATE_TIMEOUT, allow_redirects=False, stream=True) as response:
        if response.status_code != 200:
            raise ValueError(f"the certificate URL answered {response.status_code}")
        content = response.raw.read(MAX_CERTIFICATE_BYTES + 1, decode_content=True)
    if len(content) > MAX_CERTIFICATE_BYTES:
        raise ValueError(f"the certificate file is over {MAX_CERTIFICATE_BYTES} bytes")
    return content


def _signature(headers: Mapping[str, str]) -> bytes:
    """The signature bytes from ``x-ms-signature`` or ``Authorization: Signature <base64>``."""
    value = headers.get("x-ms-signature", "").strip()
    if not value:
        scheme, _, value = headers.get("authorization", "").strip().partition(" ")
        if scheme.lower() != SIGNATURE_SCHEME or not value.strip():
            raise SignatureRejected(SIGNATURE_MISSING,
                                    "no signature: expected 'Authorization: Signature <base64>' or x-ms-signature")
    else:
        scheme, _, rest = value.partition(" ")
        if scheme.lower() == SIGNATURE_SCHEME and rest.strip():
            value = rest  # some registrations send the scheme in x-ms-signature too
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected(SIGNATURE_INVALID, "the signature is not valid base64") from None


def _parse_certificates(content: bytes) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """The signing certificate and any chain served with it (PEM), or one DER certificate."""
    try:
        if content.lstrip().startswith(b"-----BEGIN"):
            certificates = x509.load_pem_x509_certificates(content)
        else:
            certificates = [x509.load_der_x509_certificate(content)]
    except ValueError:
        raise SignatureRejected(CERTIFICATE_UNTRUSTED, "the certificate URL does not serve a certificate") from None
    return certificates[0], certificates[1:]


def _chains_to(certificate: x509.Certificate, intermediates: list[x509.Certificate],
               anchors: list[x509.Certificate], now: datetime) -> bool:
    """True when a path of valid CA signatures leads from ``certificate`` to one of ``anchors``."""
    current = certificate
    for _ in range(MAX_CHAIN_LENGTH):
        for anchor in anchors:
            if _issued(current, anchor, now, anchor=True):
                return True
        issuer = next((candidate for candidate in intermediates if _issued(current, candidate, now)), None)
        if issuer is None:
            return False
        current = issuer
    return False


def _issued(certificate: x509.Certificate, issuer: x509.Certificate, now: datetime, *, anchor: bool = False) -> bool:
    # An anchor is trusted as a CA by configuration (old roots lack BasicConstraints).
    if certificate.issuer != issuer.subject or not _valid_at(issuer, now) or not (anchor or _is_ca(issuer)):
        return False
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _valid_at(certificate: x509.Certificate, now: datetime) -> bool:
    return certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc


def _system_trust_store() -> str:
    """The system's CA bundle, or certifi's (always present: requests depends on it)."""
    cafile = ssl.get_default_verify_paths().cafile
    if cafile and Path(cafile).is_file():
        return cafile
    import certifi

    return certifi.where()
