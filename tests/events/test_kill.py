"""A sync process killed with SIGKILL between its writes and their publishing: nothing is lost,
nothing never stored is published."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

from shared import app
from shared.settings import Settings
from shared.store import TableNames
from shared.sync.engine import Deadline
from shared.sync.stores import SyncStores

pytestmark = pytest.mark.slow  # sync processes killed with SIGKILL, and the runs that resume

ROOT = Path(__file__).resolve().parents[2]


def sync_process(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shared", "sync", "full", "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_sigkill_mid_run_loses_no_event_and_publishes_none_never_stored(event_env, simulator, topic, monkeypatch):
    env = {**os.environ, **event_env, "PARTNER_CENTER_PAGE_SIZE": "5", "SYNC_CONCURRENCY": "1",
           "SYNC_LEASE_SECONDS": "5"}
    account = env["PARTNER_CENTER_ACCOUNT_ID"]
    simulator.set_latency(0.2)  # a walk of about 6 s, so every kill lands inside it
    rng = random.Random(11)
    outbox = SyncStores.open(event_env["SYNC_STORAGE_CONNECTION"], TableNames(), events=True).outbox
    for kill in range(2):
        # The first run meets a refusing topic (its writes wait in the outbox), the second one
        # publishes while it goes on: killed wherever it is between a write and its publishing.
        topic.refuse(503, seconds=60 if kill == 0 else 0)
        seen = outbox.waiting(account)[0] + len(topic.events())
        process = sync_process(env)
        started = time.monotonic()
        # Killed after some writes, anywhere between them and their publishing during the run.
        while outbox.waiting(account)[0] + len(topic.events()) <= seen:
            assert time.monotonic() - started < 30, "the run wrote nothing within 30 s"
            time.sleep(0.05)
        time.sleep(rng.uniform(0, 0.5))
        assert process.poll() is None, "the run ended before the kill"
        process.send_signal(signal.SIGKILL)
        process.wait()
        if kill == 0:
            assert outbox.waiting(account)[0] > 0 and not topic.events()  # written, never published
    simulator.set_latency(0)
    # Runs until one completes (the first waits out the killed run's lease), then a last pass.
    assert subprocess.run([sys.executable, "-m", "shared", "sync", "full"], cwd=ROOT, env=env,
                          timeout=120).returncode == 0
    for name, value in event_env.items():
        monkeypatch.setenv(name, value)
    wired = app.App(Settings.from_env(), stores=SyncStores.open(event_env["SYNC_STORAGE_CONNECTION"], TableNames(),
                                                                events=True))
    wired.publish_events(deadline=Deadline.starting_now(30))

    rows = {row["RowKey"]: row for row in wired.stores.organizations.list(account)}
    assert len(rows) == 25
    versions = defaultdict(list)
    for event in topic.events():
        if event["source"] == f"/pcsync/accounts/{account}":
            versions[event["subject"].rsplit("/", 1)[1]].append(event["data"]["version"])
    # Every stored change published at least once, in order; none that was not stored.
    for tenant, row in rows.items():
        assert sorted(set(versions[tenant])) == list(range(1, row["Version"] + 1)), tenant
        assert versions[tenant] == sorted(versions[tenant])
    assert set(versions) == set(rows)
    assert wired.stores.outbox.waiting(account) == (0, None)
