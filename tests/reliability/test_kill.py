"""A real sync process killed with SIGKILL at random points; the next runs finish with nothing lost or doubled."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from shared.store import TableNames, Tables

ROOT = Path(__file__).resolve().parents[2]


def sync_process(env: dict, mode: str = "full") -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "shared", "sync", mode, "--json"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_sigkill_at_random_points_then_resume_converges(simulator, storage_connection, tmp_path):
    account = "kill" + uuid.uuid4().hex[:8]
    env = {
        **os.environ,
        "SYNC_STORAGE_CONNECTION": storage_connection,
        "PARTNER_CENTER_API_URL": simulator.url,
        "PARTNER_CENTER_AUTHORITY_URL": simulator.url,
        "PARTNER_CENTER_TENANT_ID": simulator.partner_tenant_id,
        "PARTNER_CENTER_CLIENT_ID": simulator.client_id,
        "PARTNER_CENTER_CLIENT_SECRET": simulator.client_secret,
        "PARTNER_CENTER_ACCOUNT_ID": account,
        "PARTNER_CENTER_PAGE_SIZE": "5",
        "SYNC_CONCURRENCY": "1",
        "SYNC_LEASE_SECONDS": "2",
        "REQUESTS_CA_BUNDLE": simulator.ca_path,
    }
    simulator.set_latency(0.2)  # a walk of about 6 s, so every kill lands inside it
    rng = random.Random(7)
    for _ in range(3):
        process = sync_process(env)
        time.sleep(rng.uniform(0.8, 3.5))  # past start-up, somewhere inside the walk
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        time.sleep(2.2)  # the killed run's lease expires
    simulator.set_latency(0)
    finished = sync_process(env)
    out, err = finished.communicate(timeout=120)
    assert finished.returncode == 0, err

    tables = Tables(storage_connection, TableNames())
    rows = list(tables.organizations.query_entities("PartitionKey eq @pk", parameters={"pk": account}))
    assert sorted(r["RowKey"] for r in rows) == sorted(c["id"] for c in simulator.customers())
    assert all(r["Status"] == "active" for r in rows)
    changes = list(tables.changes.query_entities("PartitionKey ge @lo and PartitionKey lt @hi",
                                                 parameters={"lo": account + "|", "hi": account + "}"}))
    creates = [c["RowKey"] for c in changes if c["Kind"] == "create"]
    assert len(creates) >= len(rows)  # every organization's creation is in the change log
    assert tables.sync_state.get_entity(account, "reconciled-through")
