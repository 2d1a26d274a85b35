"""Outbox packs (docs/events.md "How nothing is lost"): a run publishing as it goes writes a page's new
organizations in one outbox entity; what its publisher could not send is unpacked by the next pass,
in order behind nothing, and a change never stored is taken back out of its pack."""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timedelta, timezone

from shared.contacts.mapping import CONTENT_FIELDS
from shared.store import CREATE, UPDATE, ChangeEntry, OrganizationWrite, organization_state
from shared.store.outbox_packs import MAX_PACKED_BYTES, Entry, pack_entities
from shared.sync.change_log import settle_change_log

from .conftest import publish

FIELDS = {name: f"{name} value" for name in CONTENT_FIELDS}


def account_of(wired) -> str:
    return wired.settings.accounts[0].id


def created(tenant: str, at: datetime) -> ChangeEntry:
    return ChangeEntry(tenant, CREATE, at, {name: ("", value) for name, value in FIELDS.items()}, version=1)


def of_tenant(events: list[dict], tenant: str) -> list[dict]:
    return [e for e in events if e["subject"].endswith("/" + tenant)]


def test_a_run_publishing_as_it_goes_writes_one_outbox_entity_a_page(wired, topic, monkeypatch):
    account, table = account_of(wired), wired.stores.outbox._table
    written = []
    create, submit = table.create_entity, table.submit_transaction
    monkeypatch.setattr(table, "create_entity", lambda entity, **kw: written.append(1) or create(entity, **kw))
    monkeypatch.setattr(table, "submit_transaction",
                        lambda operations, **kw: written.append(len(list(operations))) or submit(operations, **kw))
    wired.run_accounts("full")  # 25 new customers, pages of 10
    assert len(topic.events()) == 25 and wired.stores.outbox.waiting(account) == (0, None)
    # A pack a page: 3 entities, not 25 rows (and the deletes, one a pack, are not transactions).
    assert written == [1, 1, 1]


def test_packs_a_publisher_left_are_unpacked_by_the_next_pass_in_order(wired, topic, simulator):
    account = account_of(wired)
    topic.refuse(503, seconds=60)
    wired.run_accounts("full")  # the publisher during the run is refused: its packs stay
    assert wired.stores.outbox.packs(account) and wired.stores.outbox.waiting(account)[0] == 25
    tenant = sorted(row["RowKey"] for row in wired.stores.organizations.list(account))[0]
    simulator.rename_customer(tenant, "Second Name")
    wired.run_accounts("full")  # its update waits in a row of its own, behind the created event
    topic.refuse(503, seconds=0)
    assert publish(wired)[0].published == 26
    assert wired.stores.outbox.packs(account) == [] and wired.stores.outbox.waiting(account) == (0, None)
    assert [e["data"]["version"] for e in of_tenant(topic.events(), tenant)] == [1, 2]
    assert len({e["id"] for e in topic.events()}) == 26


def test_a_running_runs_pack_holds_back_its_organizations_later_changes(wired, topic):
    """A pass on another instance while a run's publisher still holds a pack: the organization's
    update does not overtake its ``created`` event; once the run is over, both go, in order."""
    stores, account = wired.stores, account_of(wired)
    tenant, at = str(uuid.uuid4()), datetime.now(timezone.utc)
    run = stores.runs.start(account, "full")
    (row,) = stores.outbox.add(account, run.run_id, [created(tenant, at)], packed=True)
    assert row.pack
    stores.organizations.apply(account, [OrganizationWrite(tenant, CREATE, at, FIELDS)])
    later = at + timedelta(seconds=1)
    previous = organization_state(stores.organizations.get(account, tenant))
    stores.changes.record(account, "webhook", [ChangeEntry(tenant, UPDATE, later, {"CompanyName": (
        "CompanyName value", "Renamed")}, version=2)])
    stores.organizations.apply(account, [OrganizationWrite(tenant, UPDATE, later, {"CompanyName": "Renamed"},
                                                           previous=previous)])
    report = publish(wired)[0]
    assert (report.published, report.waiting) == (0, 2) and topic.events() == []
    stores.runs.finish(run, "completed", {}, 0, 0)
    assert publish(wired)[0].published == 2
    assert [(e["data"]["version"], e["data"]["organization"]["CompanyName"]) for e in topic.events()] == [
        (1, "CompanyName value"), (2, "Renamed")]


def test_a_change_never_stored_is_taken_out_of_its_pack(wired, topic):
    """A run died after its pack and before some of its organizations' writes: settling the run
    takes those back out of the pack; the ones stored are published, the others never."""
    stores, account = wired.stores, account_of(wired)
    at = datetime.now(timezone.utc)
    tenants = sorted(str(uuid.uuid4()) for _ in range(3))
    listening = lambda account_id, rows: None  # noqa: E731 -- a publisher would be handed the stored ones
    stores.changes.listen(listening)
    stores.changes.record(account, "dead-run", [created(t, at) for t in tenants])
    stores.changes.stop_listening(listening)
    stores.organizations.apply(account, [OrganizationWrite(tenants[0], CREATE, at, FIELDS)])
    assert stores.outbox.waiting(account)[0] == 3
    assert settle_change_log(stores, account, "dead-run", since=at - timedelta(seconds=1)) == 2
    (pack,) = stores.outbox.packs(account)
    assert pack.tenant_ids == {tenants[0]} and pack.count == 1
    assert publish(wired)[0].published == 1
    assert [e["subject"].rsplit("/", 1)[1] for e in topic.events()] == [tenants[0]]
    assert stores.outbox.waiting(account) == (0, None)


def test_unpacking_never_overwrites_a_row_the_run_wrote_since(wired):
    stores, account = wired.stores, account_of(wired)
    tenant, at = str(uuid.uuid4()), datetime.now(timezone.utc)
    (first,) = stores.outbox.add(account, "run-a", [created(tenant, at)], packed=True)
    stores.outbox.add(account, "run-a", [ChangeEntry(tenant, UPDATE, at + timedelta(seconds=1),
                                                     {"CompanyName": ("a", "b")}, version=2)])
    assert stores.outbox.unpack(account, first.pack) == 0
    (waiting,) = stores.outbox.pending(account)
    assert (waiting.kind, waiting.version) == (UPDATE, 2) and stores.outbox.packs(account) == []


def test_packs_hold_at_most_a_hundred_changes_and_a_binary_propertys_bytes():
    at = datetime.now(timezone.utc)
    small = [Entry(str(uuid.uuid4()), CREATE, at, 1, {"CompanyName": ("", "A")}) for _ in range(250)]
    entities, alone = pack_entities("account", "run", small)
    assert [e["Count"] for e in entities] == [100, 100, 50] and alone == []
    noisy = [Entry(str(uuid.uuid4()), CREATE, at, 1, {"CompanyName": ("", os.urandom(4000).hex())})
             for _ in range(20)]
    entities, alone = pack_entities("account", "run", noisy)
    assert sum(e["Count"] for e in entities) == 20 and len(entities) > 1 and alone == []
    assert all(len(e["Changes"]) <= MAX_PACKED_BYTES for e in entities)
    huge = [Entry(str(uuid.uuid4()), CREATE, at, 1, {f"F{i}": ("", os.urandom(4000).hex()) for i in range(20)})]
    assert pack_entities("account", "run", huge) == ([], huge)
