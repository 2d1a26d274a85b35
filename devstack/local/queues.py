"""A stand-in for the Functions host's queue trigger, on a real queue (Azurite locally).

It polls the queue of a registered queue function and invokes the very function with real
``azure.functions.QueueMessage`` objects, and then does what the host's queue processor does:

- success: the message is deleted;
- failure: the message becomes visible again after ``visibilityTimeout``, or, at
  ``maxDequeueCount`` attempts, it is copied to ``<queue>-poison`` and deleted;
- a message that is not valid base64 (with ``messageEncoding`` base64) goes to the poison queue
  at once, without invoking the function; so does one received more than ``maxDequeueCount``
  times (its earlier attempts died with their host).

The queue name and the connection come from the function's binding (a connection string or an
identity-based connection, resolved by the product's own factory), and the options from host.json
(``extensions.queues``), as the host reads them.

:class:`QueueListeners` keeps every registered queue function listening, the way a running host
does, polling an empty queue with randomized exponential back-off from 100 ms up to host.json's
``maxPollingInterval``; ``python -m devstack serve`` and the demo run them beside the HTTP server.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

from azure.core.exceptions import ResourceExistsError
from azure.functions.queue import QueueMessage

from devstack.local.host import function_index
from shared.host_config import QueueOptions, queue_options
from shared.store.connections import binding_storage

log = logging.getLogger(__name__)

# The host keeps a message it is processing hidden this long (and renews it); no function may run
# longer than functionTimeout (10 minutes in host.json), so one receive covers a whole invocation.
IN_FLIGHT_SECONDS = 600
# The host's shortest wait between polls of an empty queue (WebJobs' QueuePollingIntervals.Minimum).
MIN_POLLING_SECONDS = 0.1

COMPLETED = "completed"
RETRYING = "retrying"
PARKED = "parked"


@dataclass(frozen=True)
class Delivery:
    """One message handed to the function (or refused before it), and what became of it."""

    message_id: str
    dequeue_count: int
    result: str  # completed | retrying | parked
    error: str = ""


class QueueTriggerRunner:
    """Runs one registered queue function against its queue until the queue is empty."""

    def __init__(self, function_name: str, *, options: QueueOptions | None = None,
                 retry_after_seconds: float | None = None, poll_seconds: float = 0.05,
                 in_flight_seconds: int = IN_FLIGHT_SECONDS) -> None:
        function = function_index()[function_name]
        trigger = function.get_trigger()
        if trigger.get_binding_name() != "queueTrigger":
            raise ValueError(f"{function_name} is not a queue function")
        binding = trigger.get_dict_repr()
        # The product's factory, on the settings the host reads for this connection (SettingsError if unset).
        connection = binding_storage(binding["connection"], os.environ)
        self.function = function.get_user_function()
        self.options = options or queue_options()
        if retry_after_seconds is not None:  # tests retry at once instead of after visibilityTimeout
            self.options = replace(self.options, visibility_timeout_seconds=retry_after_seconds)
        self.queue = connection.queue(binding["queueName"])
        self.poison = connection.queue(binding["queueName"] + "-poison")
        self.poll_seconds = poll_seconds
        # How long a received message stays hidden: a worker that dies with it (tests use seconds)
        # gives it back to the queue after this.
        self.in_flight_seconds = in_flight_seconds
        self.deliveries: list[Delivery] = []
        self._pool = ThreadPoolExecutor(max_workers=self.options.batch_size, thread_name_prefix="queue-trigger")

    def run_batch(self) -> list[Delivery]:
        """Receive up to ``batchSize`` messages and process them in parallel, as one host instance does."""
        messages = list(self.queue.receive_messages(max_messages=self.options.batch_size,
                                                    visibility_timeout=self.in_flight_seconds))
        delivered = list(self._pool.map(self._deliver, messages))
        self.deliveries.extend(delivered)
        return delivered

    def drain(self, timeout: float = 60.0) -> list[Delivery]:
        """Process batches until no message is left in the queue (visible or not); returns them all."""
        deadline = time.monotonic() + timeout
        delivered: list[Delivery] = []
        while True:
            batch = self.run_batch()
            delivered.extend(batch)
            if not batch:
                if self.queue.get_queue_properties().approximate_message_count == 0:
                    return delivered
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the queue {self.queue.queue_name} still holds messages after {timeout:.0f}s")
                time.sleep(self.poll_seconds)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.queue.close()
        self.poison.close()

    def __enter__(self) -> "QueueTriggerRunner":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _deliver(self, message) -> Delivery:
        if message.dequeue_count > self.options.max_dequeue_count:
            self._park(message)
            return Delivery(message.id, message.dequeue_count, PARKED, "dequeued more often than maxDequeueCount")
        try:
            body = self._decode(message.content)
        except (binascii.Error, ValueError):
            log.error("queue message %s is not valid base64: moved to %s", message.id, self.poison.queue_name)
            self._park(message)
            return Delivery(message.id, message.dequeue_count, PARKED, "not valid base64")
        trigger_message = QueueMessage(
            id=message.id, body=body, dequeue_count=message.dequeue_count, expiration_time=message.expires_on,
            insertion_time=message.inserted_on, time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        try:
            self.function(trigger_message)
        except Exception as exc:  # the host records the failure and decides the message's fate
            log.warning("queue function failed on message %s (attempt %d): %s", message.id, message.dequeue_count, exc)
            if message.dequeue_count >= self.options.max_dequeue_count:
                log.warning("message has reached MaxDequeueCount of %d: moving message %s to queue %s",
                            self.options.max_dequeue_count, message.id, self.poison.queue_name)
                self._park(message)
                return Delivery(message.id, message.dequeue_count, PARKED, str(exc))
            self.queue.update_message(message, pop_receipt=message.pop_receipt,
                                      visibility_timeout=int(self.options.visibility_timeout_seconds))
            return Delivery(message.id, message.dequeue_count, RETRYING, str(exc))
        self.queue.delete_message(message, pop_receipt=message.pop_receipt)
        return Delivery(message.id, message.dequeue_count, COMPLETED)

    def _decode(self, content: str) -> bytes:
        if self.options.message_encoding == "none":
            return content.encode()
        return base64.b64decode(content, validate=True)

    def _park(self, message) -> None:
        """Copy the message, as it is, to the poison queue and delete it (the host's poison handling)."""
        try:
            self.poison.create_queue()
        except ResourceExistsError:
            pass
        self.poison.send_message(message.content)
        self.queue.delete_message(message, pop_receipt=message.pop_receipt)


def queue_function_names() -> list[str]:
    """The registered queue-trigger functions, in index order."""
    return [name for name, function in function_index().items()
            if function.get_trigger().get_binding_name() == "queueTrigger"]


class QueueListener:
    """One queue function kept listening on a thread, as a running host keeps its queue triggers.

    An empty poll doubles the wait (randomized, as the host does) from 100 ms up to
    ``maxPollingInterval``; a poll that found messages polls again at once.
    """

    def __init__(self, function_name: str, *, options: QueueOptions | None = None) -> None:
        self.runner = QueueTriggerRunner(function_name, options=options)
        self.function_name = function_name
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name=f"queue-listener-{function_name}", daemon=True)

    def start(self) -> "QueueListener":
        try:
            self.runner.queue.create_queue()
        except ResourceExistsError:
            pass
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)
        self.runner.close()

    def _listen(self) -> None:
        longest = max(MIN_POLLING_SECONDS, self.runner.options.max_polling_interval_seconds)
        wait = MIN_POLLING_SECONDS
        while not self._stop.is_set():
            try:
                found = self.runner.run_batch()
            except Exception:  # storage unavailable: the host logs and keeps polling
                log.exception("queue listener %s: polling failed", self.function_name)
                found = []
            if found:
                wait = MIN_POLLING_SECONDS
                continue
            self._stop.wait(min(wait * random.uniform(0.8, 1.2), longest))  # jittered, never beyond the cap
            wait = min(wait * 2, longest)


class QueueListeners:
    """Every registered queue function listening (``with QueueListeners(): ...``)."""

    def __init__(self, names: list[str] | None = None, *, options: QueueOptions | None = None) -> None:
        self.names = queue_function_names() if names is None else names
        self.options = options
        self.listeners: list[QueueListener] = []

    def start(self) -> "QueueListeners":
        for name in self.names:
            self.listeners.append(QueueListener(name, options=self.options).start())
        return self

    def stop(self) -> None:
        for listener in self.listeners:
            listener.stop()
        self.listeners.clear()

    def deliveries(self) -> list[Delivery]:
        """What every listener delivered so far."""
        return [delivery for listener in self.listeners for delivery in listener.runner.deliveries]

    def __enter__(self) -> "QueueListeners":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
