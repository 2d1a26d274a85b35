"""The queue trigger that processes sync units: one account's run per message (see shared/sync/units.py).

The Functions runtime spreads the messages of ``sync-units`` over its instances, retries a unit
whose run failed (``extensions.queues`` in host.json) and moves it to ``sync-units-poison`` after
``maxDequeueCount`` attempts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import azure.functions as func

from shared.sync.units import UNIT_QUEUE, UNIT_QUEUE_CONNECTION, process_unit

bp = func.Blueprint()

HOST_JSON = Path(__file__).resolve().parents[2] / "host.json"
_TIMESPAN = re.compile(r"^(\d+):(\d{2}):(\d{2})$")


@bp.function_name("process_sync_unit")
@bp.queue_trigger(arg_name="unit", queue_name=UNIT_QUEUE, connection=UNIT_QUEUE_CONNECTION)
def process_sync_unit(unit: func.QueueMessage) -> None:
    """Run the account the unit names; raising makes the runtime retry it, then park it."""
    process_unit(unit.get_body(), message_id=unit.id or "", dequeue_count=unit.dequeue_count or 1,
                 max_dequeue_count=queue_options().max_dequeue_count)


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
    match = _TIMESPAN.match(timespan)
    if not match:
        raise ValueError(f"host.json: a queue timespan must be hh:mm:ss, got {timespan!r}")
    hours, minutes, seconds = (int(part) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds
