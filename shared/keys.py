"""Keys for the sync's tables and ids read from outside: validated before any query or write, never
spliced into filters."""

from __future__ import annotations

import re
import secrets
from datetime import datetime, timezone

_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
# An account id, wherever one is read (settings, queue messages, routes, keys); '|' (our
# composite-key separator) can never appear in one.
ACCOUNT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,80}")

# Composite partition keys join their parts with a character no part may contain, so
# "a_b" + "c" and "a" + "b_c" stay distinct, and "account|" .. "account}" ranges one account.
SEPARATOR = "|"
AFTER_SEPARATOR = chr(ord(SEPARATOR) + 1)  # the first character after SEPARATOR: ends a prefix range
_MAX_MILLIS = 10**13 - 1  # year 2286: inverted timestamps keep 13 digits until then


class InvalidKey(ValueError):
    """A key value is not of the form the table expects."""


def tenant_key(tenant_id: object) -> str:
    """A customer tenant id as a RowKey: a GUID, lower-cased. Raises :class:`InvalidKey`."""
    if not isinstance(tenant_id, str) or not _GUID.fullmatch(tenant_id):
        raise InvalidKey(f"customer tenant id must be a GUID, got {tenant_id!r}")
    return tenant_id.lower()


def account_key(account_id: object) -> str:
    """An account id as a PartitionKey (1-64 letters, digits, '-' or '_')."""
    if not isinstance(account_id, str) or not ACCOUNT_ID.fullmatch(account_id):
        raise InvalidKey(f"account id must be 1-64 letters, digits, '-' or '_', got {account_id!r}")
    return account_id


def token_key(value: object, what: str) -> str:
    """A run, walk or held-change id (letters, digits, '-' or '_')."""
    if not isinstance(value, str) or not _TOKEN.fullmatch(value):
        raise InvalidKey(f"{what} must be 1-80 letters, digits, '-' or '_', got {value!r}")
    return value


def composite_key(account_id: str, part: str) -> str:
    """The PartitionKey of something that belongs to one account (a run's changes, a walk)."""
    return f"{account_key(account_id)}{SEPARATOR}{part}"


def account_range(account_id: str) -> tuple[str, str]:
    """Bounds (inclusive, exclusive) covering every composite key of one account."""
    account = account_key(account_id)
    return account + SEPARATOR, account + AFTER_SEPARATOR


def newest_first_id(at: datetime) -> str:
    """An id that sorts newest first: inverted epoch milliseconds plus a short random suffix."""
    millis = int(at.timestamp() * 1000)
    return f"{_MAX_MILLIS - millis:013d}-{secrets.token_hex(4)}"


def newest_first_bound(at: datetime) -> str:
    """The prefix of :func:`newest_first_id` at ``at``: ids made before ``at`` sort after it."""
    return f"{_MAX_MILLIS - int(at.timestamp() * 1000):013d}"


def newest_first_time(value: str) -> datetime | None:
    """When a :func:`newest_first_id` was made; ``None`` for an id of another form."""
    prefix, dash, _ = value.partition("-")
    if not (dash and len(prefix) == 13 and prefix.isdigit()):
        return None
    return datetime.fromtimestamp((_MAX_MILLIS - int(prefix)) / 1000, timezone.utc)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(timezone.utc)


def require_utc(value: datetime, what: str) -> datetime:
    """``value`` converted to UTC; naive datetimes are refused (their zone is a guess)."""
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValueError(f"{what} must be a timezone-aware datetime, got {value!r}")
    return value.astimezone(timezone.utc)
