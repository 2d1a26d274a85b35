"""A work queue and its poison queue in Azure Queue Storage, as a Functions queue trigger sees them.

Messages are base64 text (the trigger's default ``messageEncoding``); the runtime names a
trigger's poison queue ``<queue>-poison``. Both queues are created on their first message; a peek
creates nothing (a poison queue that does not exist holds no messages).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Callable

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.queue import QueueClient

from shared.keys import ACCOUNT_ID

# Peek returns at most 32 messages: the Queue service's limit.
PEEK_LIMIT = 32


class PoisonedQueue:
    """A queue a trigger reads (``work``) and the poison queue its failures end in."""

    def __init__(self, work: QueueClient, poison: QueueClient, *, parked_seconds: int = -1) -> None:
        """``parked_seconds``: how long a parked message lives (the history retention); -1 for ever."""
        self.work = work
        self.poison = poison
        self.parked_seconds = parked_seconds
        self._created: set[str] = set()

    def send_body(self, body: bytes) -> str:
        """Put a message body on the work queue; returns the message id."""
        return self._send(self.work, body).id

    def park(self, body: bytes) -> str:
        """Put a message body in the poison queue, where it stays until an operator removes it or
        ``parked_seconds`` pass."""
        return self._send(self.poison, body, time_to_live=self.parked_seconds).id

    def peek_poison(self, limit: int = PEEK_LIMIT) -> list:
        """The oldest messages in the poison queue (at most 32), left where they are; none when the
        queue does not exist (a read never creates it)."""
        try:
            return self.poison.peek_messages(max_messages=min(limit, PEEK_LIMIT))
        except ResourceNotFoundError:
            return []

    def poison_messages(self, describe: Callable[[bytes], dict], *, at: str) -> list[dict]:
        """The oldest messages in the poison queue, for status pages: each its ``messageId``, the
        moment it arrived (under the key ``at``) and what ``describe(body)`` says of it."""
        return [{"messageId": message.id, at: message.inserted_on.isoformat() if message.inserted_on else None,
                 **describe(decoded_body(message.content))} for message in self.peek_poison()]

    def _send(self, queue: QueueClient, body: bytes, **options):
        self._create(queue)
        return queue.send_message(base64.b64encode(body).decode("ascii"), **options)

    def _create(self, queue: QueueClient) -> None:
        if queue.queue_name in self._created:
            return
        try:
            queue.create_queue()
        except ResourceExistsError:
            pass
        self._created.add(queue.queue_name)


def decoded_body(content: str) -> bytes:
    """A peeked message's body: base64-decoded, or as it is when it is not base64."""
    try:
        return base64.b64decode(content, validate=True)
    except (ValueError, binascii.Error):
        return content.encode("utf-8", "replace")


def json_message(body: bytes | str, *, fields: set[str], max_bytes: int, error: type[ValueError]) -> dict:
    """A queue message body as its JSON object, with only the known ``fields``; ``error`` (naming
    the problem, never the message's values) for anything else."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    if len(raw) > max_bytes:
        raise error(f"the message is larger than {max_bytes} bytes")
    try:
        parsed = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise error("the message is not UTF-8 JSON") from None
    if not isinstance(parsed, dict):
        raise error("the message is not a JSON object")
    unknown = sorted(set(parsed) - fields)
    if unknown:
        raise error(f"unknown field(s) {', '.join(repr(name)[:40] for name in unknown[:5])}")
    return parsed


def account_field(fields: dict, error: type[ValueError]) -> str:
    """The message's ``account``: an account id, or ``error``."""
    account = fields.get("account")
    if not isinstance(account, str) or not ACCOUNT_ID.fullmatch(account):
        raise error("'account' must be an account id (1-64 letters, digits, '-' or '_')")
    return account
