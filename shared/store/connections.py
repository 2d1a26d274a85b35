"""Storage connections, resolved from app settings as Azure Functions resolves a ``connection``,
and the one factory that builds every table and queue client of the app.

A connection named ``NAME`` is either

- a connection string: the setting ``NAME`` (for the sync's own ``SYNC_STORAGE``, the setting
  ``SYNC_STORAGE_CONNECTION``), as Azurite and local runs use; or
- identity-based: ``NAME__accountName`` (the public cloud's ``https://<name>.<service>.core.windows.net``)
  or the service URIs ``NAME__tableServiceUri`` / ``NAME__queueServiceUri`` / ``NAME__blobServiceUri``,
  reached with the Function App's managed identity (``NAME__credential=managedidentity``;
  ``NAME__clientId`` picks a user-assigned identity, the system-assigned one otherwise).

Anything missing or contradictory is a :class:`~shared.settings.SettingsError` naming the setting.
"""

from __future__ import annotations

import ipaddress
import threading
from dataclasses import dataclass, field, replace
from typing import Mapping
from urllib.parse import urlsplit

from azure.data.tables import TableServiceClient
from azure.identity import ManagedIdentityCredential
from azure.storage.queue import ExponentialRetry, QueueClient

from shared.credentials import NamedCredential, managed_identity_name
from shared.settings import SettingsError

SYNC_STORAGE = "SYNC_STORAGE"
# The sync's connection string keeps its historical setting name (docs/settings.md).
SYNC_STORAGE_CONNECTION = "SYNC_STORAGE_CONNECTION"
HOST_STORAGE = "AzureWebJobsStorage"
MANAGED_IDENTITY = "managedidentity"

# Bounded retries for transient failures (408, 429, 500, 502, 503, 504 and connection errors),
# done by azure-core's retry policy inside the SDK pipeline. It also retries a transaction's POST
# on 500/503/504, which is safe: a transaction is atomic and our operations are idempotent.
DEFAULT_RETRY = {"retry_total": 3, "retry_backoff_factor": 0.5, "retry_backoff_max": 8}

# Reads done for a person waiting for the answer (status, the operators' routes): seconds, not the
# SDKs' minutes. A part that does not answer within them is reported unavailable, and the rest answers.
PERSON_TIMEOUTS = {"connection_timeout": 3, "read_timeout": 3}
PERSON_TABLE_OPTIONS = {**PERSON_TIMEOUTS, "retry_total": 1, "retry_backoff_factor": 0.2, "retry_backoff_max": 1}


def person_queue_options() -> dict:
    """The queue client's options for a person waiting: the Storage SDK's own retry policy (its
    default waits 15 s and more between attempts), with one retry after half a second."""
    return {**PERSON_TIMEOUTS,
            "retry_policy": ExponentialRetry(initial_backoff=0.5, increment_base=2, retry_total=1,
                                             random_jitter_range=0)}

_SERVICE_URIS = {"tableserviceuri": "table", "queueserviceuri": "queue", "blobserviceuri": "blob",
                 "serviceuri": "blob"}  # the host's blob alias
# The host's developer-identity properties: this app reaches storage with a managed identity only.
_DEVELOPER_IDENTITY = {"tenantid", "clientsecret", "certificate"}
# The properties a connection may have, as the Functions docs spell them.
PROPERTIES = ("accountName", "tableServiceUri", "queueServiceUri", "blobServiceUri", "credential", "clientId")
_KNOWN = {name.lower() for name in PROPERTIES} | set(_SERVICE_URIS)
_ACCOUNT_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789")


@dataclass(frozen=True)
class StorageConnection:
    """One storage account, reached with a connection string or with a managed identity.

    Hashable, so callers can keep one opened store per connection. An identity-based connection
    reaches storage with ``credential`` (:meth:`with_credentials` gives it the worker's shared one).
    """

    name: str
    connection_string: str = field(default="", repr=False)
    table_service_uri: str = ""
    queue_service_uri: str = ""
    client_id: str = ""
    credential: object = field(default=None, compare=False, repr=False)
    # A person waits for what this connection reads: short timeouts, one retry (PERSON_TABLE_OPTIONS).
    waiting: bool = False

    def for_person(self) -> "StorageConnection":
        """This connection for reads someone is waiting for (status, the operators' routes): every
        client it builds gives up within seconds instead of retrying for minutes."""
        return replace(self, waiting=True)

    def with_credentials(self, identities: "ManagedIdentities") -> "StorageConnection":
        """This connection with the worker's credential for its identity, so every client built from it
        shares one token cache."""
        return replace(self, credential=identities.get(self.client_id)) if self.identity_based else self


    @classmethod
    def from_connection_string(cls, connection_string: str, name: str = SYNC_STORAGE) -> "StorageConnection":
        """A connection with a connection string (Azurite, tests, local runs)."""
        if not connection_string.strip():
            raise SettingsError(f"{name}: the storage connection string is empty")
        return cls(name, connection_string=connection_string.strip())

    @property
    def identity_based(self) -> bool:
        return not self.connection_string

    def token_credential(self) -> NamedCredential:
        """The managed identity's credential, whose failures name this connection and the identity."""
        # Without the worker's shared credential, one of its own: correct, only asks the endpoint more often.
        credential = self.credential or ManagedIdentityCredential(client_id=self.client_id or None)
        return NamedCredential(credential, self.name, managed_identity_name(self.client_id))

    def table_service(self, **options) -> TableServiceClient:
        """A Table service client of this account (azure-core options such as ``transport`` pass through)."""
        options = {**(PERSON_TABLE_OPTIONS if self.waiting else DEFAULT_RETRY), **options}
        if self.connection_string:
            return TableServiceClient.from_connection_string(self.connection_string, **options)
        if not self.table_service_uri:
            raise SettingsError(f"{self.name}__tableServiceUri (or {self.name}__accountName) is not set: "
                                f"the connection {self.name} is used for tables")
        return TableServiceClient(endpoint=self.table_service_uri, credential=self.token_credential(),
                                  **options)

    def queue(self, queue_name: str, **options) -> QueueClient:
        """A client of the queue ``queue_name`` in this account."""
        if self.waiting:
            options = {**person_queue_options(), **options}
        if self.connection_string:
            return QueueClient.from_connection_string(self.connection_string, queue_name, **options)
        if not self.queue_service_uri:
            raise SettingsError(f"{self.name}__queueServiceUri (or {self.name}__accountName) is not set: "
                                f"the {queue_name} queue lives in the connection {self.name}")
        return QueueClient(account_url=self.queue_service_uri, queue_name=queue_name,
                           credential=self.token_credential(), **options)


def as_connection(connection: "StorageConnection | str") -> StorageConnection:
    """A :class:`StorageConnection` as it is, or a connection string wrapped in one."""
    if isinstance(connection, StorageConnection):
        return connection
    return StorageConnection.from_connection_string(connection)


def sync_storage(environ: Mapping[str, str]) -> StorageConnection:
    """The sync's tables: ``SYNC_STORAGE`` (string or identity), else the host's ``AzureWebJobsStorage``."""
    connection = resolve(SYNC_STORAGE, environ, string_setting=SYNC_STORAGE_CONNECTION)
    if connection is None:
        connection = resolve(HOST_STORAGE, environ)
    if connection is None:
        raise SettingsError(f"no storage is configured for the sync's tables: set {SYNC_STORAGE_CONNECTION} "
                            f"(a connection string) or {SYNC_STORAGE}__tableServiceUri with "
                            f"{SYNC_STORAGE}__credential=managedidentity (or {HOST_STORAGE})")
    return connection


def binding_storage(name: str, environ: Mapping[str, str]) -> StorageConnection:
    """The storage a trigger's ``connection`` names, read from the very settings the Functions host reads.

    Like the host, a name without the ``AzureWebJobs`` prefix is also looked up with it.
    """
    connection = resolve(name, environ)
    if connection is None and not name.startswith("AzureWebJobs"):
        connection = resolve("AzureWebJobs" + name, environ)
    if connection is None:
        raise SettingsError(f"{name} is not set: it needs a connection string, or {name}__accountName "
                            f"(or {name}__queueServiceUri) for a managed identity")
    return connection


def resolve(name: str, environ: Mapping[str, str], *, string_setting: str | None = None) -> StorageConnection | None:
    """The connection ``name`` from its settings; ``None`` when none of them is set.

    An empty setting counts as unset (local.settings.example.json lists the identity settings empty).
    """
    string_setting = string_setting or name
    string = environ.get(string_setting, "").strip()
    found = _properties(name, environ)
    properties = {key: value for key, (_, value) in found.items()}

    def named(keys) -> str:  # the settings as the user spelt them, for messages
        return ", ".join(found[key][0] for key in sorted(keys))

    if not string and not properties:
        return None
    if string:
        if properties:
            raise SettingsError(f"{string_setting} holds a connection string and {named(properties)} "
                                "is set too: use one or the other")
        return StorageConnection(name, connection_string=string)
    for key in properties:
        if key in _DEVELOPER_IDENTITY:
            raise SettingsError(f"{named([key])} is not supported: this app reaches storage with a managed "
                                f"identity ({name}__credential=managedidentity) or a connection string")
        if key not in _KNOWN:
            raise SettingsError(f"{named([key])} is not a storage connection setting (known: "
                                f"{', '.join(PROPERTIES)})")
    credential = properties.get("credential", "")
    if credential and credential.lower() != MANAGED_IDENTITY:
        raise SettingsError(f"{name}__credential must be managedidentity, got {credential!r}")
    client_id = properties.get("clientid", "")
    if client_id and not credential:
        raise SettingsError(f"{name}__clientId needs {name}__credential=managedidentity: without it the Functions "
                            "host uses the system-assigned identity and ignores the client id")
    uris = {service: _service_uri(found[key][0], value, service)
            for key, value in properties.items() if (service := _SERVICE_URIS.get(key))}
    account = properties.get("accountname", "")
    if account:
        if uris:
            raise SettingsError(f"{named(['accountname'])} and {named(k for k in properties if k in _SERVICE_URIS)} "
                                "are both set: use the account name or the service URIs, not both")
        if not (3 <= len(account) <= 24 and set(account) <= _ACCOUNT_NAME_CHARS):
            raise SettingsError(f"{named(['accountname'])} must be a storage account name (3-24 lowercase "
                                f"letters and digits), got {account!r}")
        uris = {service: f"https://{account}.{service}.core.windows.net" for service in ("table", "queue", "blob")}
    if not uris:
        raise SettingsError(f"{named(properties)} is set but neither {name}__accountName nor "
                            f"{name}__tableServiceUri / {name}__queueServiceUri: the account is unknown")
    return StorageConnection(name, table_service_uri=uris.get("table", ""), queue_service_uri=uris.get("queue", ""),
                             client_id=client_id)


def _properties(name: str, environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """``NAME__property`` settings with a value: lowercased property → (setting, value); app settings ignore case."""
    prefix = name.lower() + "__"
    found = {}
    for key, value in environ.items():
        if key.lower().startswith(prefix) and value.strip():
            found[key[len(prefix):].lower()] = (key, value.strip())
    return found


def _service_uri(setting: str, value: str, service: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise SettingsError(f"{setting} must be an https URI such as https://<account>.{service}.core.windows.net, "
                            f"got {value!r}")
    if parts.scheme == "http":
        # azure-core and Azurite both refuse bearer tokens without TLS, so http never works, even on loopback.
        where = ("bearer tokens need TLS, also on loopback (start Azurite with --oauth basic --cert --key, "
                 "or use a connection string)") if _is_loopback(parts.hostname) else \
            f"a managed identity's token is never sent over plain http to {parts.hostname}"
        raise SettingsError(f"{setting} must use https: {where}")
    if parts.query or parts.fragment:
        raise SettingsError(f"{setting} must be a service URI without query or fragment (no SAS token)")
    return value.rstrip("/")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ManagedIdentities:
    """The worker's managed-identity credentials, one per client id (system-assigned when empty), so
    every client of one identity shares its token cache and asks the identity endpoint once."""

    def __init__(self) -> None:
        self._credentials: dict[str, ManagedIdentityCredential] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str = "") -> ManagedIdentityCredential:
        with self._lock:
            credential = self._credentials.get(client_id)
            if credential is None:
                credential = self._credentials[client_id] = ManagedIdentityCredential(client_id=client_id or None)
            return credential
