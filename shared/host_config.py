"""What host.json tells the Functions host that the sync must respect: the invocation timeout and the
queue triggers' options."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from shared.settings import Settings, SettingsError

HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
# The Consumption plan's default when host.json names none (the strictest plan).
DEFAULT_FUNCTION_TIMEOUT_SECONDS = 5 * 60
# Time an invocation keeps after its budget: the page in hand, the run log, releasing the lease.
WRAP_UP_SECONDS = 60
_TIMESPAN = re.compile(r"^(?:(\d+)\.)?(\d+):(\d{2}):(\d{2})$")
_QUEUE_TIMESPAN = re.compile(r"^(\d+):(\d{2}):(\d{2})$")


@lru_cache(maxsize=4)
def function_timeout_seconds(path: Path = HOST_JSON) -> float | None:
    """host.json's ``functionTimeout`` in seconds; ``None`` for ``-1`` (unbounded, Premium/Dedicated)."""
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return DEFAULT_FUNCTION_TIMEOUT_SECONDS
    value = str(config.get("functionTimeout", "")).strip()
    if not value:
        return DEFAULT_FUNCTION_TIMEOUT_SECONDS
    if value == "-1":
        return None
    match = _TIMESPAN.match(value)
    if not match:
        raise SettingsError(f"host.json: functionTimeout must be [d.]hh:mm:ss or -1, got {value!r}")
    days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def check_time_budget(settings: Settings, path: Path = HOST_JSON) -> None:
    """SYNC_TIME_BUDGET_SECONDS must leave room inside functionTimeout, or the host kills the run."""
    timeout = function_timeout_seconds(path)
    if timeout is None:
        return
    allowed = timeout - WRAP_UP_SECONDS
    if settings.time_budget_seconds > allowed:
        raise SettingsError(
            f"SYNC_TIME_BUDGET_SECONDS is {settings.time_budget_seconds:g} s, but host.json's functionTimeout "
            f"allows {timeout:g} s per invocation: set it to at most {allowed:g} s ({WRAP_UP_SECONDS} s are kept "
            f"to store the page in hand and the run log), or raise functionTimeout"
        )


@dataclass(frozen=True)
class QueueOptions:
    """The host's queue-trigger options (``extensions.queues`` in host.json), with its defaults."""

    batch_size: int = 16
    max_dequeue_count: int = 5
    visibility_timeout_seconds: float = 0.0  # how long a failed message stays hidden before its retry
    message_encoding: str = "base64"
    # The longest wait between two polls of an empty queue (the host backs off up to it).
    max_polling_interval_seconds: float = 60.0


@lru_cache(maxsize=1)
def queue_options(path: Path = HOST_JSON) -> QueueOptions:
    """The queue options the Functions host reads from host.json, so the last attempt is known here too."""
    queues = json.loads(path.read_text()).get("extensions", {}).get("queues", {})
    defaults = QueueOptions()
    return QueueOptions(
        batch_size=int(queues.get("batchSize", defaults.batch_size)),
        max_dequeue_count=int(queues.get("maxDequeueCount", defaults.max_dequeue_count)),
        visibility_timeout_seconds=_seconds(queues.get("visibilityTimeout", "00:00:00")),
        message_encoding=queues.get("messageEncoding", defaults.message_encoding),
        max_polling_interval_seconds=_seconds(queues.get("maxPollingInterval", "00:01:00")),
    )


def _seconds(timespan: str) -> float:
    match = _QUEUE_TIMESPAN.match(timespan)
    if not match:
        raise ValueError(f"host.json: a queue timespan must be hh:mm:ss, got {timespan!r}")
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds
