"""The Platform's Event Grid topic: its settings (``PLATFORM_EVENTS__*``) and the client that sends batches.

A custom topic (docs/events.md says why), or a namespace topic when ``PLATFORM_EVENTS__topicName``
is set; always with a managed identity (role ``EventGrid Data Sender``), never a key. Batches stay
within Event Grid's limits: at most 1 MB a request (each event counted as sent) and
:data:`MAX_EVENTS` events, the smaller of the custom topic's and the namespace topic's limits.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.core.messaging import CloudEvent

from shared.credentials import NamedCredential, managed_identity_name
from shared.settings import SettingsError

CONNECTION = "PLATFORM_EVENTS"
PROPERTIES = ("topicEndpointUri", "credential", "clientId", "topicName")
SCOPE = "https://eventgrid.azure.net/.default"
MAX_EVENTS = 1000
# 1 MB a request; room kept for the array's brackets and commas.
MAX_REQUEST_BYTES = 1_000_000 - 1024
# The SDK hands a call's transport options (its timeouts) to its event model too, which warns on
# every send that it ignores them; the transport applies them.
logging.getLogger("azure.eventgrid._legacy._generated._serialization").setLevel(logging.ERROR)


@dataclass(frozen=True)
class TopicSettings:
    """Where events go and as whom."""

    endpoint: str
    client_id: str = ""
    topic_name: str = ""  # a namespace topic's name; empty for a custom topic

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "TopicSettings | None":
        """The ``PLATFORM_EVENTS__*`` settings (names matched without regard to case, an empty value
        is unset); ``None`` when none is set: no events. A bad one is a :class:`SettingsError` naming it."""
        given = {}
        for name, value in environ.items():
            prefix, _, prop = name.partition("__")
            if prefix.upper() == CONNECTION and value.strip():
                known = {p.lower(): p for p in PROPERTIES}
                if prop.lower() not in known:
                    raise SettingsError(f"{name} is not a setting of {CONNECTION}: use {', '.join(_names())}")
                given[known[prop.lower()]] = value.strip()
        if not given:
            return None
        endpoint = given.get("topicEndpointUri", "")
        parts = urlsplit(endpoint)
        if parts.scheme != "https" or not parts.hostname:
            raise SettingsError(f"{CONNECTION}__topicEndpointUri must be the topic's https endpoint, got {endpoint!r}")
        if given.get("credential", "").lower() != "managedidentity":
            raise SettingsError(f"{CONNECTION}__credential must be managedidentity: events are published with "
                                f"the app's identity, never a key")
        return cls(endpoint, given.get("clientId", ""), given.get("topicName", ""))


def _names() -> list[str]:
    return [f"{CONNECTION}__{p}" for p in PROPERTIES]


class TopicRefused(Exception):
    """The topic did not take a batch (throttled, failing, unreachable, or refusing it): none of
    its events count as published; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Topic:
    """Sends batches of CloudEvents to one topic."""

    def __init__(self, settings: TopicSettings, credential: TokenCredential, **client_options: Any) -> None:
        from azure.eventgrid import EventGridPublisherClient

        self.settings = settings
        named = NamedCredential(credential, CONNECTION, managed_identity_name(settings.client_id))
        # The publisher decides when to try again (the outbox keeps the events): one attempt a call.
        self._client = EventGridPublisherClient(settings.endpoint, named, namespace_topic=settings.topic_name or None,
                                                retry_total=0, **client_options)

    def send(self, events: Sequence[dict], timeout: float) -> None:
        """Send one batch (at most :data:`MAX_EVENTS`, 1 MB) within ``timeout`` seconds, or raise :class:`TopicRefused`."""
        from azure.core.exceptions import AzureError, HttpResponseError

        cloud_events = [CloudEvent.from_dict(event) for event in events]
        seconds = max(1, int(timeout))
        try:
            self._client.send(cloud_events, connection_timeout=min(10, seconds), read_timeout=seconds)
        except HttpResponseError as exc:
            raise TopicRefused(f"the topic answered {exc.status_code}: {exc.reason or exc.message}"[:300],
                               exc.status_code) from exc
        except AzureError as exc:
            raise TopicRefused(f"the topic could not be reached: {type(exc).__name__}: {exc}"[:300]) from exc

    def close(self) -> None:
        self._client.close()


def batches(events: Sequence[dict]) -> Iterator[list[dict]]:
    """``events`` in order, cut into requests Event Grid accepts (count and bytes)."""
    batch: list[dict] = []
    size = 0
    for event in events:
        length = len(json.dumps(event, ensure_ascii=False).encode()) + 1
        if length > MAX_REQUEST_BYTES:
            raise ValueError(f"event {event['id']} is {length} bytes, over Event Grid's 1 MB")
        if batch and (len(batch) >= MAX_EVENTS or size + length > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(event)
        size += length
    if batch:
        yield batch
