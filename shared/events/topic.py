"""The Platform's Event Grid topic: its settings (``PLATFORM_EVENTS__*``) and the client that sends batches.

Event Grid's publish call: ``POST {endpoint}?api-version=2018-01-01`` for a custom topic,
``POST {endpoint}/topics/{name}:publish?api-version=2024-06-01`` for a namespace topic, a JSON
array of CloudEvents as ``application/cloudevents-batch+json``, a bearer token for
``https://eventgrid.azure.net``; 200 when the topic took the whole batch.

A custom topic (docs/events.md says why), or a namespace topic when ``PLATFORM_EVENTS__topicName``
is set; always with a managed identity (role ``EventGrid Data Sender``), never a key. Batches stay
within Event Grid's limits: at most 1 MB a request (each event counted as sent) and
:data:`MAX_EVENTS` events, the smaller of the custom topic's and the namespace topic's limits.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence
from urllib.parse import quote, urlsplit

from azure.core import PipelineClient
from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.policies import (
    BearerTokenCredentialPolicy,
    DistributedTracingPolicy,
    HeadersPolicy,
    HttpLoggingPolicy,
    UserAgentPolicy,
)
from azure.core.rest import HttpRequest

from shared.credentials import NamedCredential, managed_identity_name
from shared.settings import SettingsError

CONNECTION = "PLATFORM_EVENTS"
PROPERTIES = ("topicEndpointUri", "credential", "clientId", "topicName")
SCOPE = "https://eventgrid.azure.net/.default"
MAX_EVENTS = 1000
# 1 MB a request; room kept for the array's brackets and commas.
MAX_REQUEST_BYTES = 1_000_000 - 1024
CONTENT_TYPE = "application/cloudevents-batch+json; charset=utf-8"
CUSTOM_TOPIC_API_VERSION = "2018-01-01"
NAMESPACE_API_VERSION = "2024-06-01"


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
    """Sends batches of CloudEvents to one topic: Event Grid's publish REST call on azure-core's
    pipeline, with a bearer token for Event Grid from the managed identity.

    Not azure-eventgrid's ``EventGridPublisherClient``: its model serializer walks every event's
    ``data`` field by field (4 ms an event here, 20 s for 5,000 new customers) and its custom-topic
    client drops the transport options it is given. The body here is the events' JSON as measured
    for the batch limits, sent once. No retry policy: the publisher decides when to try again (the
    outbox keeps the events).
    """

    def __init__(self, settings: TopicSettings, credential: TokenCredential, **client_options: Any) -> None:
        self.settings = settings
        named = NamedCredential(credential, CONNECTION, managed_identity_name(settings.client_id))
        policies = [
            HeadersPolicy(),
            UserAgentPolicy(sdk_moniker="pcsync-events"),
            BearerTokenCredentialPolicy(named, SCOPE),
            DistributedTracingPolicy(),
            HttpLoggingPolicy(),
        ]
        self._client = PipelineClient(settings.endpoint, policies=policies, **client_options)
        endpoint = settings.endpoint.rstrip("/")
        self._url = (f"{endpoint}/topics/{quote(settings.topic_name)}:publish?api-version={NAMESPACE_API_VERSION}"
                     if settings.topic_name else f"{endpoint}?api-version={CUSTOM_TOPIC_API_VERSION}")

    def send(self, batch: Sequence[bytes], timeout: float) -> None:
        """Send one batch (events as JSON, at most :data:`MAX_EVENTS` and 1 MB, see :func:`batches`)
        within ``timeout`` seconds, or raise :class:`TopicRefused`."""
        seconds = max(1.0, timeout)
        request = HttpRequest("POST", self._url, content=b"[" + b",".join(batch) + b"]",
                              headers={"Content-Type": CONTENT_TYPE})
        try:
            response = self._client.send_request(request, connection_timeout=min(10.0, seconds), read_timeout=seconds)
        except AzureError as exc:
            raise TopicRefused(f"the topic could not be reached: {type(exc).__name__}: {exc}"[:300]) from exc
        if response.status_code != 200:
            raise TopicRefused(f"the topic answered {response.status_code}: {response.text()[:200]}",
                               response.status_code)

    def close(self) -> None:
        self._client.close()


def batches(events: Sequence[dict]) -> Iterator[list[bytes]]:
    """``events`` in order, as JSON, cut into requests Event Grid accepts (count and bytes)."""
    batch: list[bytes] = []
    size = 0
    for event in events:
        encoded = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        if len(encoded) + 2 > MAX_REQUEST_BYTES:
            raise ValueError(f"event {event['id']} is {len(encoded)} bytes, over Event Grid's 1 MB")
        if batch and (len(batch) >= MAX_EVENTS or size + len(encoded) + 1 > MAX_REQUEST_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(encoded)
        size += len(encoded) + 1
    if batch:
        yield batch
