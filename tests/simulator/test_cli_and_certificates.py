"""Running the simulator as its own process, and the certificates it serves."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
from pathlib import Path

import requests
from cryptography import x509

from devstack.simulator.certificates import issue_server_certificate

PROJECT = Path(__file__).resolve().parents[2]


def _settings_from(process: subprocess.Popen, deadline: float) -> dict[str, str]:
    settings: dict[str, str] = {}
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if "=" in line and line.split("=", 1)[0].isupper():
            key, value = line.strip().split("=", 1)
            settings[key] = value
        if line.startswith("Scenario controls"):
            return settings
    raise AssertionError(f"the simulator did not announce itself: {settings}")


def test_serve_prints_the_settings_and_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.simulator.cli", "--port", "0", "--customers", "7", "--state-dir", str(tmp_path)],
        cwd=PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
    )
    try:
        settings = _settings_from(process, time.monotonic() + 20)
        url = settings["PARTNER_CENTER_API_URL"]
        assert settings["PARTNER_CENTER_AUTHORITY_URL"] == url and url.startswith("https://127.0.0.1:")
        assert settings["REQUESTS_CA_BUNDLE"] == str(tmp_path / "ca.pem")
        token = requests.post(
            f"{url}/{settings['PARTNER_CENTER_TENANT_ID']}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": settings["PARTNER_CENTER_CLIENT_ID"],
                  "client_secret": settings["PARTNER_CENTER_CLIENT_SECRET"],
                  "scope": "https://api.partnercenter.microsoft.com/.default"},
            verify=settings["REQUESTS_CA_BUNDLE"], timeout=10,
        ).json()["access_token"]
        page = requests.get(f"{url}/v1/customers", headers={"Authorization": f"Bearer {token}"},
                            verify=settings["REQUESTS_CA_BUNDLE"], timeout=10).json()
        assert page["totalCount"] == 7
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "stopped" in out


def test_the_server_certificate_covers_loopback_and_chains_to_the_local_ca(tmp_path):
    issued = issue_server_certificate(tmp_path, ["127.0.0.1"])
    cert = x509.load_pem_x509_certificate(issued.cert_path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    context = ssl.create_default_context(cafile=str(issued.ca_path))
    context.load_cert_chain(issued.cert_path, issued.key_path)  # the key matches the certificate
    assert oct(issued.key_path.stat().st_mode & 0o777) == "0o600"


def test_a_state_folder_keeps_its_ca_across_restarts(tmp_path):
    first = issue_server_certificate(tmp_path, ["127.0.0.1"])
    ca = first.ca_path.read_bytes()
    server = first.cert_path.read_bytes()
    second = issue_server_certificate(tmp_path, ["127.0.0.1"])
    assert second.ca_path.read_bytes() == ca
    assert second.cert_path.read_bytes() != server
