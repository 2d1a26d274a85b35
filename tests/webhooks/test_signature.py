"""The signature verifier on its own: certificate cache, chain and issuer checks, URL rules."""

from __future__ import annotations

import base64
import datetime
import socket
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

import requests

from shared.webhooks.signature import SignatureRejected, SignatureVerifier, fetch_certificate

NOW = datetime.datetime.now(datetime.timezone.utc)
BODY = b'{"EventName": "test-created"}'
URL = "https://certs.example.net/cert/signing.cer"


def name(organization: str, common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                      x509.NameAttribute(NameOID.COMMON_NAME, common)])


def certificate(subject, issuer, public_key, signing_key, *, ca: bool, days: int = 30):
    return (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1)).not_valid_after(NOW + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(signing_key, hashes.SHA256()))


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A root, an intermediate (both "Microsoft Corporation"), and a leaf signing key."""
    root_key, intermediate_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = certificate(name("Microsoft Corporation", "Root"), name("Microsoft Corporation", "Root"),
                       root_key.public_key(), root_key, ca=True)
    intermediate = certificate(name("Microsoft Corporation", "Issuing CA"), root.subject,
                               intermediate_key.public_key(), root_key, ca=True)
    leaf = certificate(name("Microsoft Corporation", "dispatch"), intermediate.subject, leaf_key.public_key(),
                       intermediate_key, ca=False)
    anchors = tmp_path_factory.mktemp("anchors") / "root.pem"
    anchors.write_bytes(root.public_bytes(serialization.Encoding.PEM))
    return {"root": root, "intermediate": intermediate, "leaf": leaf, "leaf_key": leaf_key, "anchors": str(anchors),
            "intermediate_key": intermediate_key}


def pem(*certificates) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def signed_headers(key) -> dict:
    signature = base64.b64encode(key.sign(BODY, padding.PKCS1v15(), hashes.SHA256())).decode()
    return {"Authorization": f"Signature {signature}", "X-MS-Certificate-Url": URL,
            "X-MS-Signature-Algorithm": "rsa-sha256"}


def verifier(pki, served: bytes | Exception, fetched: list | None = None, **options) -> SignatureVerifier:
    def fetch(url: str) -> bytes:
        if fetched is not None:
            fetched.append(url)
        if isinstance(served, Exception):
            raise served
        return served

    return SignatureVerifier(["certs.example.net"], [pki["anchors"]], fetch=fetch, **options)


def test_a_chain_served_with_the_certificate_is_followed_to_the_anchor(pki):
    verifier(pki, pem(pki["leaf"], pki["intermediate"])).verify(signed_headers(pki["leaf_key"]), BODY)


def test_the_certificate_is_fetched_once_and_then_cached(pki):
    fetched: list = []
    checker = verifier(pki, pem(pki["leaf"], pki["intermediate"]), fetched)
    for _ in range(3):
        checker.verify(signed_headers(pki["leaf_key"]), BODY)
    assert fetched == [URL]


def test_a_leaf_without_its_intermediate_does_not_chain(pki):
    with pytest.raises(SignatureRejected) as refused:
        verifier(pki, pem(pki["leaf"])).verify(signed_headers(pki["leaf_key"]), BODY)
    assert refused.value.reason == "certificate-untrusted"


def test_an_issuer_other_than_the_configured_organization_is_refused(pki):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    stranger = certificate(name("Contoso", "dispatch"), name("Contoso", "Issuing CA"), key.public_key(),
                           pki["intermediate_key"], ca=False)
    with pytest.raises(SignatureRejected) as refused:
        verifier(pki, pem(stranger, pki["intermediate"])).verify(signed_headers(key), BODY)
    assert "Microsoft Corporation" in refused.value.detail


@pytest.mark.parametrize("url", [
    "http://certs.example.net/cert/signing.cer",
    "https://certs.example.net.evil.example/cert/signing.cer",
    "https://user@certs.example.net/cert/signing.cer",
    "https://certs.example.net:8443/cert/signing.cer",
    "https://169.254.169.254/metadata",
    "https://certs.example.net/other/signing.cer",  # off the path prefix (WEBHOOK_CERTIFICATE_PATHS)
    "https://certs.example.net/cert/../other/signing.cer",
    "https://certs.example.net/cert/%2e%2e/other/signing.cer",
    "https://certs.example.net/certificates/signing.cer",
    "https://certs.example.net/cert/",
])
def test_a_certificate_url_off_the_allow_list_is_refused_without_a_fetch(pki, url):
    fetched: list = []
    headers = {**signed_headers(pki["leaf_key"]), "X-MS-Certificate-Url": url}
    with pytest.raises(SignatureRejected) as refused:
        verifier(pki, pem(pki["leaf"], pki["intermediate"]), fetched).verify(headers, BODY)
    assert refused.value.reason == "certificate-url-refused" and fetched == []


def test_certificate_urls_are_cached_by_their_normalised_form(pki):
    # 100 spellings an outsider might send: query, fragment, host case, :443, // and /./ in the path.
    fetched: list = []
    checker = verifier(pki, pem(pki["leaf"], pki["intermediate"]), fetched)
    spellings = ["https://certs.example.net/cert/signing.cer?v={i}", "https://CERTS.example.net:443/cert/signing.cer#{i}",
                 "https://certs.example.net//cert/./signing.cer?{i}", "https://certs.example.net/cert/b/signing.cer?{i}"]
    for i in range(100):
        headers = {**signed_headers(pki["leaf_key"]), "X-MS-Certificate-Url": spellings[i % 4].format(i=i)}
        checker.verify(headers, BODY)
    assert sorted(fetched) == sorted([URL, "https://certs.example.net/cert/b/signing.cer"])


def test_a_failed_fetch_is_remembered_for_a_minute_not_retried_per_request(pki):
    fetched: list = []
    now = [1000.0]
    checker = verifier(pki, requests.ConnectionError("refused"), fetched, monotonic=lambda: now[0])
    for _ in range(20):
        with pytest.raises(SignatureRejected) as refused:
            checker.verify(signed_headers(pki["leaf_key"]), BODY)
        assert refused.value.reason == "certificate-unavailable"
    assert fetched == [URL]
    now[0] += 61
    with pytest.raises(SignatureRejected):
        checker.verify(signed_headers(pki["leaf_key"]), BODY)
    assert fetched == [URL, URL]


def test_an_untrusted_certificate_is_remembered_too(pki):
    fetched: list = []
    checker = verifier(pki, pem(pki["leaf"]), fetched)  # no intermediate: does not chain
    for _ in range(5):
        with pytest.raises(SignatureRejected) as refused:
            checker.verify(signed_headers(pki["leaf_key"]), BODY)
        assert refused.value.reason == "certificate-untrusted"
    assert fetched == [URL]


def test_concurrent_requests_for_one_url_share_one_fetch(pki):
    fetched: list = []
    release = threading.Event()
    served = pem(pki["leaf"], pki["intermediate"])

    def slow_fetch(url: str) -> bytes:
        fetched.append(url)
        release.wait(5)
        return served

    checker = SignatureVerifier(["certs.example.net"], [pki["anchors"]], fetch=slow_fetch)
    outcomes: list = []

    def deliver(i: int) -> None:
        headers = {**signed_headers(pki["leaf_key"]), "X-MS-Certificate-Url": f"{URL}?delivery={i}"}
        outcomes.append(checker.verify(headers, BODY))

    threads = [threading.Thread(target=deliver, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)  # all of them are waiting for the one fetch
    release.set()
    for thread in threads:
        thread.join(10)
    assert fetched == [URL] and len(outcomes) == 8


def test_a_certificate_server_trickling_bytes_is_cut_off_at_the_deadline():
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def trickle() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 60000\r\n\r\n")
            while not stop.is_set():
                try:
                    connection.sendall(b"x")  # each byte well within the read timeout
                except OSError:
                    return
                stop.wait(0.2)

    server = threading.Thread(target=trickle, daemon=True)
    server.start()
    started = time.monotonic()
    try:
        with pytest.raises(ValueError, match="did not arrive within"):
            fetch_certificate(f"http://127.0.0.1:{listener.getsockname()[1]}/cert/x.cer", deadline_seconds=4.0)
        assert time.monotonic() - started < 4.0
    finally:
        stop.set()
        listener.close()
