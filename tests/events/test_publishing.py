"""Every kind of stored change becomes exactly one event of the right type, published from the outbox."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from shared.events.cloud import CONTRACT_PROPERTIES, event_id
from shared.operations.actions import exclude_organization, include_organization
from shared.settings import SettingsError
from shared.events.topic import TopicSettings

from .conftest import CLIENT_ID, publish


def account_of(wired) -> str:
    return wired.settings.accounts[0].id


def of_tenant(events: list[dict], tenant: str) -> list[dict]:
    return [e for e in events if e["subject"].endswith("/" + tenant)]


def test_every_kind_of_change_publishes_one_event_of_its_type(wired, topic, simulator, identity):
    account = account_of(wired)
    wired.run_accounts("full")
    # New organizations go out while the run goes on: the pass after it finds nothing left.
    created = topic.events()
    assert len(created) == 25 and wired.stores.outbox.waiting(account) == (0, None)
    assert [r.published for r in publish(wired)] == [0]
    assert {e["type"] for e in created} == {"pcsync.organization.created"}
    rows = {row["RowKey"]: row for row in wired.stores.organizations.list(account)}
    assert {e["subject"] for e in created} == {f"accounts/{account}/organizations/{t}" for t in rows}
    first = created[0]
    tenant = first["subject"].rsplit("/", 1)[1]
    assert first["source"] == f"/pcsync/accounts/{account}"
    assert first["id"] == event_id(account, tenant, 1) and first["data"]["version"] == 1
    assert set(first["data"]["organization"]) == set(CONTRACT_PROPERTIES)
    assert first["data"]["organization"]["CompanyName"] == rows[tenant]["CompanyName"]
    assert first["data"]["changes"]["CompanyName"] == {"old": "", "new": rows[tenant]["CompanyName"]}
    assert datetime.fromisoformat(first["time"]) == rows[tenant]["LastChangedAt"]
    # The token came from the app's user-assigned identity, for Event Grid.
    assert any(r.resource == "https://eventgrid.azure.net" and r.client_id == CLIENT_ID for r in identity.requests)

    # Nothing changed: nothing published.
    wired.run_accounts("full")
    publish(wired)
    assert len(topic.events()) == 25

    updated, ended, excluded = sorted(rows)[:3]
    simulator.rename_customer(updated, "Renamed Ltd")
    simulator.remove_relationship(ended)
    wired.run_accounts("full")
    exclude_organization(wired.stores, account, excluded, by="test")
    publish(wired)
    simulator.restore_relationship(ended)
    wired.run_accounts("full")
    include_organization(wired.stores, account, excluded, by="test")
    publish(wired)

    later = topic.events()[25:]
    assert [(e["type"], e["data"]["version"]) for e in of_tenant(later, updated)] == [
        ("pcsync.organization.updated", 2)]
    assert of_tenant(later, updated)[0]["data"]["changes"]["CompanyName"]["new"] == "Renamed Ltd"
    assert [(e["type"], e["data"]["organization"]["Status"]) for e in of_tenant(later, ended)] == [
        ("pcsync.organization.ended", "relationship_ended"), ("pcsync.organization.reactivated", "active")]
    assert [e["type"] for e in of_tenant(later, excluded)] == ["pcsync.organization.excluded",
                                                              "pcsync.organization.included"]
    assert len(later) == 5
    for tenant in (updated, ended, excluded):
        stored = wired.stores.organizations.get(account, tenant)
        published = [e["data"]["version"] for e in of_tenant(topic.events(), tenant)]
        assert published == list(range(1, stored["Version"] + 1))
    assert wired.stores.outbox.waiting(account) == (0, None)
    assert wired.status.account(account)["events"] == {"waiting": 0, "oldestWaiting": None, "lagSeconds": 0}


def test_a_topic_that_refuses_for_a_while_loses_nothing_and_keeps_each_organizations_order(wired, topic, simulator):
    account = account_of(wired)
    topic.refuse(503, seconds=60)
    wired.run_accounts("full")  # refused while the run goes on: its events wait in the outbox
    tenant = sorted(row["RowKey"] for row in wired.stores.organizations.list(account))[0]
    reports = publish(wired)
    assert reports[0].published == 0 and "503" in reports[0].error and reports[0].waiting == 25
    simulator.rename_customer(tenant, "Second Name")
    wired.run_accounts("full")
    simulator.rename_customer(tenant, "Third Name")
    wired.run_accounts("full")
    status = wired.status.account(account)["events"]
    assert status["waiting"] == 27 and status["oldestWaiting"] is not None
    topic.refuse(429, seconds=0)
    assert publish(wired)[0].published == 27
    events = of_tenant(topic.events(), tenant)
    assert [e["data"]["version"] for e in events] == [1, 2, 3]
    # Each event carries the organization as its change left it, though all went out after the last.
    assert [e["data"]["organization"]["CompanyName"] for e in events][1:] == ["Second Name", "Third Name"]
    assert events[0]["data"]["organization"]["CompanyName"] == events[1]["data"]["changes"]["CompanyName"]["old"]
    assert len({e["id"] for e in topic.events()}) == 27


def test_replay_from_a_date_sends_the_same_ids_again(wired, topic, simulator):
    account = account_of(wired)
    wired.run_accounts("full")
    publish(wired)
    middle = datetime.now(timezone.utc)
    tenant = sorted(row["RowKey"] for row in wired.stores.organizations.list(account))[0]
    simulator.rename_customer(tenant, "After The Date")
    wired.run_accounts("full")
    publish(wired)
    first_time = {e["id"]: e for e in topic.events()}
    sent, skipped = wired.replay_events(account, middle)
    assert (sent, skipped) == (1, 0)
    again = topic.events()[-1]
    assert again == first_time[again["id"]] and again["data"]["version"] == 2
    sent, _ = wired.replay_events(account, datetime(2000, 1, 1, tzinfo=timezone.utc))
    assert sent == 26
    assert {e["id"] for e in topic.events()[-26:]} == set(first_time)


def test_a_change_not_yet_stored_waits_and_one_never_stored_is_never_published(wired, topic):
    from shared.store import ChangeEntry
    account = account_of(wired)
    wired.run_accounts("full")
    publish(wired)
    tenant = sorted(row["RowKey"] for row in wired.stores.organizations.list(account))[0]
    # Logged (and in the outbox) as a write would be, but the process stopped before the write.
    at = datetime.now(timezone.utc)
    wired.stores.changes.record(account, "dead-run", [ChangeEntry(tenant, "update", at, {"CompanyName": ("a", "b")},
                                                                  version=2)])
    assert publish(wired)[0].waiting == 1 and len(topic.events()) == 25
    # The run that settles the dead one takes the entry back: the event goes with it.
    from shared.sync.change_log import settle_change_log
    assert settle_change_log(wired.stores, account, "dead-run", since=at) == 1
    assert publish(wired)[0].waiting == 0 and len(topic.events()) == 25
    # The outbox row and the entry are written at once: a process may die with the row alone.
    wired.stores.outbox.add(account, "dead-run-2", [ChangeEntry(tenant, "update", at, {"CompanyName": ("a", "c")},
                                                                version=2)])
    assert publish(wired)[0].waiting == 1
    assert settle_change_log(wired.stores, account, "dead-run-2", since=at) == 1
    assert publish(wired)[0].waiting == 0 and len(topic.events()) == 25


@pytest.mark.parametrize("environ, named", [
    ({"PLATFORM_EVENTS__credential": "managedidentity"}, "PLATFORM_EVENTS__topicEndpointUri"),
    ({"PLATFORM_EVENTS__topicEndpointUri": "http://topic.example/api/events",
      "PLATFORM_EVENTS__credential": "managedidentity"}, "PLATFORM_EVENTS__topicEndpointUri"),
    ({"PLATFORM_EVENTS__topicEndpointUri": "https://t.westeurope-1.eventgrid.azure.net/api/events"},
     "PLATFORM_EVENTS__credential"),
    ({"PLATFORM_EVENTS__topicEndpointUri": "https://t.westeurope-1.eventgrid.azure.net/api/events",
      "PLATFORM_EVENTS__credential": "managedidentity", "PLATFORM_EVENTS__key": "secret"}, "PLATFORM_EVENTS__key"),
])
def test_a_bad_events_setting_names_the_setting(environ, named):
    with pytest.raises(SettingsError, match=named):
        TopicSettings.from_environ(environ)


def test_no_events_settings_means_no_events():
    assert TopicSettings.from_environ({"PLATFORM_EVENTS__clientId": ""}) is None
    found = TopicSettings.from_environ({"platform_events__TOPICENDPOINTURI": "https://t.example/api/events",
                                        "PLATFORM_EVENTS__credential": "ManagedIdentity"})
    assert found.endpoint == "https://t.example/api/events" and found.topic_name == ""


def test_a_round_of_many_organizations_is_read_by_tenant_range(wired, topic):
    """Beyond 100 organizations a round reads their landing columns in one range query (whole rows
    only where an event needs them): the events are the same as with point reads."""
    import uuid
    from shared.contacts.mapping import CONTENT_FIELDS
    from shared.store import CREATE, UPDATE, ChangeEntry, OrganizationWrite, organization_state

    account = account_of(wired)
    stores = wired.stores
    at = datetime.now(timezone.utc)
    tenants = sorted(str(uuid.uuid4()) for _ in range(150))
    fields = {name: f"{name} value" for name in CONTENT_FIELDS}
    stores.changes.record(account, "bulk", [ChangeEntry(t, CREATE, at, {n: ("", v) for n, v in fields.items()},
                                                        version=1) for t in tenants])
    stores.organizations.apply(account, [OrganizationWrite(t, CREATE, at, fields) for t in tenants])
    # One of them changes again before any pass: its created event still carries the created state.
    renamed, later = tenants[7], datetime.now(timezone.utc)
    previous = organization_state(stores.organizations.get(account, renamed))
    stores.changes.record(account, "rename", [ChangeEntry(renamed, UPDATE, later, {"CompanyName": (
        "CompanyName value", "Renamed")}, version=2)])
    stores.organizations.apply(account, [OrganizationWrite(renamed, UPDATE, later, {"CompanyName": "Renamed"},
                                                           previous=previous)])
    assert publish(wired)[0].published == 151
    events = of_tenant(topic.events(), renamed)
    assert [(e["type"], e["data"]["organization"]["CompanyName"]) for e in events] == [
        ("pcsync.organization.created", "CompanyName value"), ("pcsync.organization.updated", "Renamed")]
    created = events[0]["data"]["organization"]
    assert created["Status"] == "active" and created["Version"] == 1 and created["FirstSyncedAt"] == events[0]["time"]
    assert events[1]["data"]["organization"]["FirstSyncedAt"] == created["FirstSyncedAt"]


def test_an_event_redelivered_after_a_lost_acknowledgement_carries_the_same_id(wired, topic, monkeypatch):
    """The topic took a batch, then the process lost its outbox delete (storage failed, or it died),
    during the run and in the pass after it: the next pass sends the same events again, same ids."""
    account = account_of(wired)
    outbox = wired.stores.outbox
    remove = outbox.remove

    def storage_fails(*args, **kwargs):
        raise RuntimeError("storage unavailable")

    monkeypatch.setattr(outbox, "remove", storage_fails)
    wired.run_accounts("full")  # the publishing during the run gives up after its first batch; its rows stay
    during = [e["id"] for e in topic.events()]
    assert during and outbox.waiting(account)[0] == 25
    with pytest.raises(RuntimeError):
        publish(wired)
    first = [e["id"] for e in topic.events()[len(during):]]
    assert len(first) == 25 and set(during) < set(first) and outbox.waiting(account)[0] == 25
    monkeypatch.setattr(outbox, "remove", remove)
    assert publish(wired)[0].published == 25
    assert [e["id"] for e in topic.events()[len(during) + 25:]] == first
    assert outbox.waiting(account) == (0, None)


def test_a_row_written_again_after_it_was_handed_on_is_not_deleted_with_the_old_event(wired):
    """The publishing during the run deletes a row naming the ETag its write got: a row recorded again
    since (new content for the same organization and run) stays for its own event."""
    from shared.store import CREATE, UPDATE, ChangeEntry

    account, outbox, tenant = account_of(wired), wired.stores.outbox, "5d0f7a36-2b1e-4c8a-9f3e-1a2b3c4d5e6f"
    at = datetime.now(timezone.utc)
    first = outbox.add(account, "run-a", [ChangeEntry(tenant, CREATE, at, {"CompanyName": ("", "A")}, version=1)])
    assert first[0].etag
    again = outbox.add(account, "run-a", [ChangeEntry(tenant, UPDATE, at, {"CompanyName": ("A", "B")}, version=2)])
    assert outbox.remove(account, first) == 0 and outbox.waiting(account)[0] == 1
    assert outbox.remove(account, again) == 1 and outbox.waiting(account) == (0, None)
