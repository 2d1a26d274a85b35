"""HTTP functions under test: the real function index, real requests, Azurite, the simulator.

The functions read their settings from the environment, so each test points them at Azurite and
gives its account a unique id: organizations are partitioned by account, so tests never meet.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from shared import app
from shared.functions.principal import OPERATOR, encode
from shared.contacts.mapping import Contact, CustomerRecord, organization_fields
from devstack.local.host import call_http
from shared.store import CREATE, END, EXCLUDE, OrganizationWrite
from shared.operations.units import POISON_QUEUE, UNIT_QUEUE

# Who the operator routes see in these tests unless a test says otherwise: App Service
# Authentication is on (``configured``) and signed this operator in.
OPERATOR_NAME, OPERATOR_OBJECT_ID = "operator@example.com", "00000000-0000-4000-8000-00000000a11c"
SIGNED_IN_OPERATOR = encode(OPERATOR_NAME, OPERATOR_OBJECT_ID, [OPERATOR])
OPERATOR_SIGNATURE = f"{OPERATOR_NAME} ({OPERATOR_OBJECT_ID})"

STORED_CONTACT = Contact(
    first_name="Ada", last_name="Lovelace", email="Ada.Lovelace@Contoso.com", phone="+44 20 7946 0000",
    address_line1="12 Analytical Row", address_line2="Floor 2", address_line3="", city="London",
    state="Greater London", postal_code="EC1A 1BB", country="GB", culture="en-GB", language="en",
)


@pytest.fixture
def account_id() -> str:
    return "acct-" + uuid.uuid4().hex[:12]


@pytest.fixture
def configured(monkeypatch, storage_connection, account_id):
    """The app configured for one account on Azurite (credentials unused unless a test syncs), behind
    App Service Authentication (``WEBSITE_AUTH_ENABLED=True``, as the platform sets it)."""
    for name in ("PARTNER_CENTER_ACCOUNTS", "PARTNER_CENTER_API_URL", "PARTNER_CENTER_AUTHORITY_URL",
                 "SYNC_NOW_COOLDOWN_SECONDS", "SYNC_CUSTOMER_LIMIT_PER_MINUTE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    monkeypatch.setenv("SYNC_STORAGE_CONNECTION", storage_connection)
    monkeypatch.setenv("AzureWebJobsStorage", storage_connection)  # where the sync-units queue lives
    monkeypatch.setenv("PARTNER_CENTER_ACCOUNT_ID", account_id)
    monkeypatch.setenv("PARTNER_CENTER_TENANT_ID", str(uuid.uuid4()))
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_ID", str(uuid.uuid4()))
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_SECRET", "not-used")
    app.use(None)
    yield account_id
    app.use(None)


@pytest.fixture
def with_partner_center(configured, simulator, monkeypatch):
    """The configured account is the simulator's partner, over HTTPS."""
    monkeypatch.setenv("PARTNER_CENTER_API_URL", simulator.url)
    monkeypatch.setenv("PARTNER_CENTER_AUTHORITY_URL", simulator.url)
    monkeypatch.setenv("PARTNER_CENTER_TENANT_ID", simulator.partner_tenant_id)
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_ID", simulator.client_id)
    monkeypatch.setenv("PARTNER_CENTER_CLIENT_SECRET", simulator.client_secret)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", simulator.ca_path)
    app.use(None)
    app.use(None)
    yield simulator
    app.use(None)


@pytest.fixture
def unit_queue(storage_connection):
    """The ``sync-units`` queue, emptied of what earlier tests left (its poison queue too)."""
    clients = [QueueClient.from_connection_string(storage_connection, name) for name in (UNIT_QUEUE, POISON_QUEUE)]
    for client in clients:
        try:
            client.create_queue()
        except ResourceExistsError:
            client.clear_messages()
    yield clients[0]
    for client in clients:
        client.close()


@pytest.fixture
def stores(configured):
    return app.current().stores


@pytest.fixture
def seed(stores, configured):
    """Store an organization for the configured account: ``seed(status="active", **contact changes)``."""

    def store(status: str = "active", tenant_id: str | None = None, contact: Contact = STORED_CONTACT) -> str:
        tenant = tenant_id or str(uuid.uuid4())
        record = CustomerRecord(tenant, "Contoso Ltd", "contoso.onmicrosoft.com", "reseller")
        now = datetime.now(timezone.utc)
        stores.organizations.apply(configured, [OrganizationWrite(tenant, CREATE, now, organization_fields(record, contact))])
        if status != "active":
            kind = {"relationship_ended": END, "excluded": EXCLUDE}[status]
            stores.organizations.apply(configured, [OrganizationWrite(tenant, kind, now)])
        return tenant

    return store


_OPERATOR = object()


def http_request(method: str, route: str, body: bytes | str | dict | list | None = None, *,
                 route_params: dict | None = None, params: dict | None = None,
                 headers: dict | None = None, principal=_OPERATOR) -> func.HttpRequest:
    """A real ``azure.functions.HttpRequest``, as the host builds it.

    A request to an ``ops/`` route carries :data:`SIGNED_IN_OPERATOR`'s headers unless
    ``principal`` gives others (``None``: no principal at all)."""
    if principal is _OPERATOR:
        principal = SIGNED_IN_OPERATOR if route.startswith("ops/") else None
    headers = {**(principal or {}), **(headers or {})}
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    return func.HttpRequest(method=method, url=f"http://localhost/api/{route}", headers=headers or {},
                            params=params or {}, route_params=route_params or {}, body=body or b"")


def validate(body) -> func.HttpResponse:
    """POST /api/contacts/validate through the registered function."""
    return call_http("validate_contact_edit", http_request("POST", "contacts/validate", body))


def answer(response: func.HttpResponse) -> dict:
    return json.loads(response.get_body())


def is_problem(response: func.HttpResponse) -> bool:
    body = answer(response)
    return (response.mimetype == "application/problem+json" and body["status"] == response.status_code
            and all(isinstance(body.get(k), str) and body[k] for k in ("type", "title", "detail")))
