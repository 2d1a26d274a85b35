"""Is this webhook event from Partner Center? RSA-SHA256 over the raw body, checked against the
certificate named by ``X-MS-Certificate-Url``.

The certificate is accepted only when its URL is https on an allow-listed host under an allowed
path, it is valid now, it chains to a configured trust anchor, and its issuer is the configured
organization ("Microsoft Corporation" in production).

An outsider names the URL, so what it costs is bounded: the URL is normalised (scheme, host, port,
path; no query or fragment) before anything else, and the cache is keyed by that. Verified
certificates are kept an hour, failures a minute; one fetch serves every request waiting for the
same URL; a fetch has a deadline of :data:`CERTIFICATE_DEADLINE` seconds in all.
"""

from __future__ import annotations

import base64
import binascii
import logging
import re
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
CERTIFICATE_TIMEOUT = (2.0, 3.0)  # connect, each read: the sender waits for our answer meanwhile
CERTIFICATE_DEADLINE = 10.0  # the whole fetch: connect, headers and body
CACHE_SIZE = 16
CACHE_SECONDS = 3600.0
# A failed fetch or an untrusted certificate is answered from memory this long: naming a URL that
# fails does not buy an outbound request per delivery.
FAILURE_CACHE_SECONDS = 60.0
FAILURE_CACHE_SIZE = 64
DEFAULT_PATH_PREFIXES = ("/cert/",)
# A certificate path is plain: no percent-encoding, no backslashes, nothing a server might read two ways.
_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9._~/-]*")
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
    certificate: x509.Certificate | None
    expires: float  # monotonic
    refusal: SignatureRejected | None = None


class _Flight:
    """One fetch in progress; requests for the same URL wait for its outcome."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.outcome: _Cached | None = None


class SignatureVerifier:
    """Verifies webhook signatures. Thread-safe; keep one per process (it caches certificates).

    ``allowed_hosts`` are host names, or ``host:port`` for a non-default port (the simulator);
    ``path_prefixes`` what the certificate URL's path must start with;
    ``trust_anchors`` PEM files of trusted CA certificates (empty: the system trust store);
    ``issuer_organization`` the O= the signing certificate's issuer must carry.
    """

    def __init__(
        self,
        allowed_hosts: Iterable[str],
        trust_anchors: Iterable[str] = (),
        issuer_organization: str = "Microsoft Corporation",
        *,
        path_prefixes: Iterable[str] = DEFAULT_PATH_PREFIXES,
        fetch: Callable[[str], bytes] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_hosts = frozenset(host.strip().lower() for host in allowed_hosts if host.strip())
        # A prefix is a folder: "/cert" means "/cert/…", not "/certificates".
        self.path_prefixes = tuple(f"/{p}/".replace("//", "/") for p in (x.strip().strip("/") for x in path_prefixes))
        self.anchor_files = tuple(trust_anchors) or (_system_trust_store(),)
        self.issuer_organization = issuer_organization
        self._fetch = fetch or fetch_certificate
        self._clock = clock
        self._monotonic = monotonic
        self._anchors: list[x509.Certificate] | None = None
        self._cache: OrderedDict[str, _Cached] = OrderedDict()
        self._failures: OrderedDict[str, _Cached] = OrderedDict()
        self._flights: dict[str, _Flight] = {}
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
        url = self.normalise_url(url)
        with self._lock:
            cached = self._cached(url)
            if cached is None:
                flight = self._flights.get(url)
                leader = flight is None
                if leader:
                    flight = self._flights[url] = _Flight()
        if cached is None and not leader:
            # Another request is fetching this URL: its outcome is ours too.
            if not flight.done.wait(CERTIFICATE_DEADLINE + 1.0) or flight.outcome is None:
                raise SignatureRejected(CERTIFICATE_UNAVAILABLE, "the signing certificate could not be fetched in time")
            cached = flight.outcome
        elif cached is None:
            try:
                cached = self._load(url)
            finally:
                with self._lock:
                    flight.outcome = cached
                    del self._flights[url]
                    if cached is not None:
                        self._remember(url, cached)
                flight.done.set()
        if cached.refusal is not None:
            raise cached.refusal
        return cached.certificate

    def _cached(self, url: str) -> _Cached | None:
        now = self._monotonic()
        for cache in (self._cache, self._failures):
            cached = cache.get(url)
            if cached is not None and cached.expires > now:
                cache.move_to_end(url)
                return cached
            cache.pop(url, None)
        return None

    def _remember(self, url: str, cached: _Cached) -> None:
        cache, size = (self._failures, FAILURE_CACHE_SIZE) if cached.refusal else (self._cache, CACHE_SIZE)
        cache[url] = cached
        cache.move_to_end(url)
        while len(cache) > size:
            cache.popitem(last=False)

    def _load(self, url: str) -> _Cached:
        """Fetch and check the certificate: the certificate, or the refusal to remember briefly."""
        failed = self._monotonic() + FAILURE_CACHE_SECONDS
        try:
            content = self._fetch(url)
        except (requests.RequestException, ValueError) as exc:
            log.warning("webhook signing certificate %s could not be fetched: %s", url, exc)
            return _Cached(None, failed, SignatureRejected(
                CERTIFICATE_UNAVAILABLE, f"the signing certificate could not be fetched ({type(exc).__name__})"))
        try:
            certificate, intermediates = _parse_certificates(content)
            self._check_trust(certificate, intermediates)
        except SignatureRejected as refusal:
            return _Cached(None, failed, refusal)
        # Never keep a certificate past its own expiry.
        lifetime = min(CACHE_SECONDS, (certificate.not_valid_after_utc - self._clock()).total_seconds())
        return _Cached(certificate, self._monotonic() + lifetime)

    def normalise_url(self, url: str) -> str:
        """``https://host[:port]/path`` for an allowed certificate URL: the host lower-cased, the
        default port left out, empty and ``.`` path segments dropped, query and fragment ignored.
        Anything else is :class:`SignatureRejected` (``certificate-url-refused``)."""
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
        netloc = f"{host}:{port}" if port not in (None, 443) else host
        if netloc not in self.allowed_hosts:
            raise SignatureRejected(CERTIFICATE_URL_REFUSED,
                                    f"the certificate host {parts.netloc[:100]!r} is not on WEBHOOK_CERTIFICATE_HOSTS")
        segments = [segment for segment in parts.path.split("/") if segment not in ("", ".")]
        if not _PATH_CHARACTERS.fullmatch(parts.path) or ".." in segments or not segments:
            raise SignatureRejected(CERTIFICATE_URL_REFUSED,
                                    "the certificate URL's path must be plain (letters, digits, . _ ~ - and /)")
        path = "/" + "/".join(segments)
        if not any(path.startswith(prefix) for prefix in self.path_prefixes):
            raise SignatureRejected(CERTIFICATE_URL_REFUSED,
                                    f"the certificate path {path[:100]!r} is not under WEBHOOK_CERTIFICATE_PATHS")
        return f"https://{netloc}{path}"

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


def fetch_certificate(url: str, *, deadline_seconds: float = CERTIFICATE_DEADLINE) -> bytes:
    """GET the certificate file: no redirects (they could leave the allow-listed host), at most
    :data:`MAX_CERTIFICATE_BYTES`, and done within ``deadline_seconds``: a read starts only
    while it can still end (its timeout) before the deadline, so a server trickling bytes is cut off."""
    deadline = time.monotonic() + deadline_seconds
    read_timeout = CERTIFICATE_TIMEOUT[1]
    content = bytearray()
    with requests.get(url, timeout=CERTIFICATE_TIMEOUT, allow_redirects=False, stream=True) as response:
        if response.status_code != 200:
            raise ValueError(f"the certificate URL answered {response.status_code}")
        while len(content) <= MAX_CERTIFICATE_BYTES:
            if time.monotonic() + read_timeout > deadline:
                raise ValueError(f"the certificate did not arrive within {deadline_seconds:g} s")
            chunk = response.raw.read1(MAX_CERTIFICATE_BYTES + 1 - len(content), decode_content=True)
            if not chunk:
                break
            content += chunk
    if len(content) > MAX_CERTIFICATE_BYTES:
        raise ValueError(f"the certificate file is over {MAX_CERTIFICATE_BYTES} bytes")
    return bytes(content)


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
