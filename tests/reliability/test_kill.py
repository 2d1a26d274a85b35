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

import pytest
from azure.core.exceptions import ResourceNotFoundError

from shared.store import TableNames, Tables

pytestmark = pytest.mark.slow  # sync processes killed with SIGKILL, and the runs that resume

ROOT = Path(__file__).resolve().parents[2]
LEASE_SECONDS = 5


def runs_of(tables: Tables, account: str) -> list[dict]:
    try:
        # Run rows only: the run log's index rows sort after them (RowKey '~...').
        return list(tables.runs.query_entities("PartitionKey eq @pk and RowKey lt '~'", parameters={"pk": account}))
    except ResourceNotFoundError:
        return []  # the first process has not created the tables yet


def wait_for_new_run(tables: Tables, account: str, known: set[str], timeout: float) -> float:
    """Seconds until a run of the account starts that is not among ``known`` (it holds the lease)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        fresh = [r for r in runs_of(tables, account) if r["RowKey"] not in known and r["Mode"] == "full"]
        if fresh:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"no run started within {timeout} s")


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
        "SYNC_LEASE_SECONDS": str(LEASE_SECONDS),
        "REQUESTS_CA_BUNDLE": simulator.ca_path,
    }
    simulator.set_latency(0.2)  # a walk of about 6 s, so every kill lands inside it
    tables = Tables(storage_connection, TableNames())
    rng = random.Random(7)
    process = sync_process(env)
    wait_for_new_run(tables, account, set(), timeout=30)
    freed_after = []
    for _ in range(3):
        time.sleep(rng.uniform(0.5, 3.0))  # somewhere inside the walk
        known = {r["RowKey"] for r in runs_of(tables, account)}
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert process.returncode == -signal.SIGKILL
        # The next run starts at once and waits for the killed run's lease, which nobody renews now.
        process = sync_process(env)
        freed_after.append(wait_for_new_run(tables, account, known, timeout=LEASE_SECONDS + 30))
    # A crashed run costs its account at most one lease (plus the next run's start-up).
    assert max(freed_after) <= LEASE_SECONDS + 5, freed_after
    simulator.set_latency(0)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err

    rows = list(tables.organizations.query_entities("PartitionKey eq @pk", parameters={"pk": account}))
    assert sorted(r["RowKey"] for r in rows) == sorted(c["id"] for c in simulator.customers())
    assert all(r["Status"] == "active" for r in rows)
    changes = list(tables.changes.query_entities("PartitionKey ge @lo and PartitionKey lt @hi",
                                                 parameters={"lo": account + "|", "hi": account + "}"}))
    creates = [c["RowKey"] for c in changes if c["Kind"] == "create"]
    assert len(creates) >= len(rows)  # every organization's creation is in the change log
    assert tables.sync_state.get_entity(account, "reconciled-through")
    # The killed runs do not stay "running": the runs after them closed them as abandoned.
    outcomes = sorted(r["Outcome"] for r in runs_of(tables, account))
    assert outcomes.count("abandoned") == 3 and "running" not in outcomes, outcomes
