"""The rotated refresh token of an app+user account, kept encrypted in the SyncState table.

Partner Center's refresh tokens rotate on every redemption: the newest one must survive the
process. It is stored encrypted (Fernet: AES-128-CBC with HMAC-SHA256) with a key from an app
setting, never in clear and never logged. The setting that holds the refresh token an admin
obtained is the starting point; when an admin puts a new one there, it wins over the stored one.
"""

from __future__ import annotations

import hashlib

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode
from cryptography.fernet import Fernet, InvalidToken

from shared.keys import account_key, utc_now
from shared.store.tables import Tables

_ROW = "refresh-token"


class RefreshTokenStore:
    """Load and save one account's current refresh token (a :class:`RefreshTokenVault`)."""

    def __init__(self, tables: Tables, account_id: str, configured_token: str, encryption_key: str) -> None:
        if not configured_token:
            raise ValueError(f"account {account_id}: the refresh-token setting is empty")
        try:
            self._fernet = Fernet(encryption_key.encode())
        except (ValueError, TypeError):
            raise ValueError("SYNC_TOKEN_ENCRYPTION_KEY must be a Fernet key (32 url-safe base64 bytes)") from None
        self._table = tables.sync_state
        self._account = account_key(account_id)
        self._configured = configured_token
        # Which configured token the stored chain descends from: a new one in the setting wins.
        self._origin = hashlib.sha256(configured_token.encode()).hexdigest()

    def load(self) -> str:
        try:
            entity = self._table.get_entity(self._account, _ROW)
        except ResourceNotFoundError:
            return self._configured
        if entity.get("Origin") != self._origin:
            return self._configured
        try:
            return self._fernet.decrypt(entity["Token"].encode()).decode()
        except (InvalidToken, KeyError):
            # Stored with another key (rotated) or damaged: start again from the setting.
            return self._configured

    def save(self, refresh_token: str) -> None:
        self._table.upsert_entity({
            "PartitionKey": self._account,
            "RowKey": _ROW,
            "Origin": self._origin,
            "Token": self._fernet.encrypt(refresh_token.encode()).decode(),
            "SavedAt": utc_now(),
        }, mode=UpdateMode.REPLACE)
