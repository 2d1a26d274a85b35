"""Store tests run against the session's real Azurite, with uniquely prefixed tables per test."""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import parse_qs, urlsplit
from datetime import datetime, timezone

import pytest

from shared.contacts.mapping import Contact, CustomerRecord, organization_fields
from shared.store import TableNames, Tables

ACCOUNT = "contoso-direct"
T0 = datetime(2025, 1, 6, 8, 0, tzinfo=timezone.utc)


class RequestLog:
    """Every request the SDK sends (method, url, body), via azure-core's raw_request_hook."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.entities_read = 0

    def __call__(self, pipeline_request) -> None:
        request = pipeline_request.http_request
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        self.requests.append((request.method, request.url, body))

    def on_response(self, pipeline_response) -> None:
        """Counts the entities the service returned: a query's ``value`` or one entity read."""
        response = pipeline_response.http_response
        if response.request.method != "GET" or response.status_code != 200:
            return
        answer = json.loads(response.text() or "{}")
        self.entities_read += len(answer["value"]) if "value" in answer else 1

    def filtered_columns(self) -> set[str]:
        """The columns the queries sent so far filter on: only PartitionKey and RowKey means every
        query was a key lookup or a key range, which costs the same however big the table."""
        columns: set[str] = set()
        for method, url, _ in self.requests:
            for value in parse_qs(urlsplit(url).query).get("$filter", []):
                columns.update(re.findall(r"(\w+) (?:eq|ne|gt|ge|lt|le) ", value))
        return columns

    def clear(self) -> None:
        self.requests.clear()
        self.entities_read = 0

    def returned_entities(self) -> int:
        return self.entities_read

    def batches(self) -> list[bytes]:
        return [body for method, url, body in self.requests if url.endswith("$batch")]


@pytest.fixture
def request_log() -> RequestLog:
    return RequestLog()


@pytest.fixture
def tables(storage_connection, table_prefix, request_log):
    with Tables(storage_connection, TableNames().with_prefix(table_prefix), raw_request_hook=request_log,
                raw_response_hook=request_log.on_response) as opened:
        opened.create_all()
        request_log.requests.clear()
        yield opened
        opened.delete_all()


def new_tenant() -> str:
    return str(uuid.uuid4())


def content(company: str = "Contoso", **contact) -> dict[str, str]:
    """The content fields of an organization, as the sync maps them."""
    customer = CustomerRecord(
        tenant_id=new_tenant(), company_name=company, domain="contoso.onmicrosoft.com", relationship_to_partner="reseller"
    )
    values = dict(first_name="Ada", last_name="Lovelace", email="ada@contoso.example", phone="+44 1",
                  address_line1="1 Way", city="London", postal_code="N1", country="GB")
    values.update(contact)
    return organization_fields(customer, Contact(**values))
