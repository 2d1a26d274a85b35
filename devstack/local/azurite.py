"""Start and stop Azurite (the official Azure Storage emulator) on free loopback ports.

Azurite comes from the project's own `package.json` (`npm ci`), so the version is pinned.
By default it serves http and accepts the well-known account key (:attr:`Azurite.connection_string`).
Given a certificate it serves https with ``--oauth basic``: it then also accepts bearer tokens
(identity-based connections, :attr:`Azurite.table_service_uri` and friends) and refuses requests
without valid credentials, as a storage account with shared keys disabled would.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development key: public, documented, and only accepted by the emulator.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def azurite_command() -> list[str]:
    local = PROJECT_ROOT / "node_modules" / ".bin" / "azurite"
    if local.exists():
        return [str(local)]
    found = shutil.which("azurite")
    if found:
        return [found]
    raise RuntimeError("Azurite is not installed: run `npm ci` in the project folder (see docs/local-development.md)")


class Azurite:
    """A running Azurite with table and queue services, in memory, on loopback.

    ``certificate`` (PEM certificate and key paths, for ``host``) switches on https and OAuth.
    """

    def __init__(self, host: str = "127.0.0.1", *, certificate: tuple[Path, Path] | None = None) -> None:
        self.host = host
        self.certificate = certificate
        self.scheme = "https" if certificate else "http"
        self.table_port = 0
        self.queue_port = 0
        self.blob_port = 0
        self._process: subprocess.Popen | None = None
        self._workdir: tempfile.TemporaryDirectory | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_service_uri};QueueEndpoint={self.queue_service_uri};"
            f"TableEndpoint={self.table_service_uri};"
        )

    @property
    def table_service_uri(self) -> str:
        """The Table service URI (path-style, as Azurite serves it), for ``<connection>__tableServiceUri``."""
        return f"{self.scheme}://{self.host}:{self.table_port}/{ACCOUNT_NAME}"

    @property
    def queue_service_uri(self) -> str:
        return f"{self.scheme}://{self.host}:{self.queue_port}/{ACCOUNT_NAME}"

    @property
    def blob_service_uri(self) -> str:
        return f"{self.scheme}://{self.host}:{self.blob_port}/{ACCOUNT_NAME}"

    def start(self, timeout: float = 30.0) -> "Azurite":
        self.table_port, self.queue_port, self.blob_port = free_port(), free_port(), free_port()
        self._workdir = tempfile.TemporaryDirectory(prefix="azurite-")
        command = azurite_command() + [
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--skipApiVersionCheck",
            "--silent",
            "--blobHost", self.host, "--blobPort", str(self.blob_port),
            "--queueHost", self.host, "--queuePort", str(self.queue_port),
            "--tableHost", self.host, "--tablePort", str(self.table_port),
        ]
        if self.certificate:
            cert_path, key_path = self.certificate
            command += ["--cert", str(cert_path), "--key", str(key_path), "--oauth", "basic"]
        self._process = subprocess.Popen(
            command,
            cwd=self._workdir.name,  # keeps any stray files Azurite writes out of the work tree
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"Azurite exited at start (code {self._process.returncode}): {error}")
            if all(_listening(self.host, port) for port in (self.table_port, self.queue_port)):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Azurite did not listen within {timeout:.0f}s")

    def stop(self) -> None:
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process and self._process.stderr:
            self._process.stderr.close()
        self._process = None
        if self._workdir:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> "Azurite":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False
