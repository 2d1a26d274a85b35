"""A local certificate authority and the simulator's HTTPS server certificate.

MSAL only accepts `https` authorities, so the simulator needs a certificate that clients can
trust: they point `REQUESTS_CA_BUNDLE` (or `verify=`) at the CA written here. Elliptic-curve keys
keep generation to a few milliseconds, so the simulator still starts in well under a second.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_FILE = "ca.pem"
CA_KEY_FILE = "ca-key.pem"
SERVER_FILE = "server.pem"
SERVER_KEY_FILE = "server-key.pem"

CA_LIFETIME = datetime.timedelta(days=3650)
SERVER_LIFETIME = datetime.timedelta(days=30)
# A CA that expires sooner than this is replaced, so a reused state folder never serves a dying chain.
CA_RENEWAL_MARGIN = datetime.timedelta(days=31)


@dataclass(frozen=True)
class ServerCertificate:
    """Paths of the PEM files a TLS server and its clients need."""

    ca_path: Path
    cert_path: Path
    key_path: Path


def issue_server_certificate(state_dir: Path, hosts: list[str]) -> ServerCertificate:
    """Write a server certificate for `hosts` into `state_dir`, signed by the folder's local CA.

    The CA is reused when the folder already holds a valid one, so a client that trusted it once
    (for example through `REQUESTS_CA_BUNDLE` in a shell) keeps working across simulator restarts.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_cert, ca_key = _load_or_create_ca(state_dir, now)

    key = ec.generate_private_key(ec.SECP256R1())
    names = [_subject_alternative_name(host) for host in dict.fromkeys(hosts + ["localhost", "127.0.0.1"])]
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + SERVER_LIFETIME)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = ServerCertificate(state_dir / CA_FILE, state_dir / SERVER_FILE, state_dir / SERVER_KEY_FILE)
    _write_key(paths.key_path, key)
    paths.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return paths


@dataclass(frozen=True)
class SigningCertificate:
    """A certificate (DER, as Partner Center publishes its `.cer`) and the RSA key that signs with it."""

    der: bytes
    key: rsa.RSAPrivateKey


def issue_signing_certificates(state_dir: Path) -> tuple[SigningCertificate, SigningCertificate]:
    """The webhook signing certificate issued by the folder's local CA, and an untrusted twin.

    The twin carries the same names (its issuer field names the CA) but is signed by its own
    key, so only checking the chain's signatures tells them apart. Both keys are RSA: Partner Center signs events with rsa-sha256.
    """
    now = datetime.datetime.now(datetime.timezone.utc)
    ca_cert, ca_key = _load_or_create_ca(state_dir, now)
    key, twin_key = _rsa_key(), _rsa_key()
    subject = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Partner Center Simulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, "pcnotifications-dispatch.simulator.local"),
    ])

    def build(public_key, issuer_name, signing_key) -> bytes:
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + SERVER_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True), critical=True)
            .sign(signing_key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.DER)

    trusted = SigningCertificate(build(key.public_key(), ca_cert.subject, ca_key), key)
    untrusted = SigningCertificate(build(twin_key.public_key(), ca_cert.subject, twin_key), twin_key)
    return trusted, untrusted


def _rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _load_or_create_ca(state_dir: Path, now: datetime.datetime):
    cert_path, key_path = state_dir / CA_FILE, state_dir / CA_KEY_FILE
    if cert_path.exists() and key_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if cert.not_valid_after_utc - now > CA_RENEWAL_MARGIN:
                return cert, key
        except ValueError:
            pass  # unreadable leftovers are replaced below

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Partner Center Simulator"),
        x509.NameAttribute(NameOID.COMMON_NAME, "Partner Center Simulator Local CA"),
    ])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + CA_LIFETIME)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert, key


def _key_usage(*, digital_signature=False, key_cert_sign=False, crl_sign=False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _subject_alternative_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Private keys are readable by their owner only, even in a throwaway folder.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(pem)
