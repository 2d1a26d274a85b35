"""`python -m devstack demo` tells the truth: each step reports the runs its trigger started, and
their counts match the change-log entries the step prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # Azurite, the simulator and the functions host: ~10 s per demo

ROOT = Path(__file__).resolve().parents[2]

# The queue trigger syncs a webhook event's customer, then marks the event processed. Holding that
# mark back leaves the event pending when step 3 fires the incremental timer, whose drain of pending
# events then syncs Fabrikam (and its billing change) in a run of its own: the case where the newest
# run of the account is not the one that changed anything.
_LATE_EVENT_BOOKKEEPING = """
import sys, threading, time
from shared.webhooks.store import WebhookEventStore

mark_processed = WebhookEventStore.mark_processed

def late(self, *args, **kwargs):
    if threading.current_thread().name.startswith("queue-trigger"):
        time.sleep(2.0)
    return mark_processed(self, *args, **kwargs)

WebhookEventStore.mark_processed = late
from devstack.local.demo import run_demo
sys.exit(run_demo())
"""

_STEP = re.compile(r"^(\d)\. ", re.M)
_RUN = re.compile(r"^   (\w+) run (\S+) (\w+) in [\d.]+s: ([^(\n]*)", re.M)
_CHANGE_LOG = re.compile(r"^   change log of (?:this run|these runs): (.*)$", re.M)
_ENTRY = re.compile(r"^   change log, \w+ run (\S+): (\w+) ", re.M)
_WRITES = ("created", "updated", "ended")


def run_demo(*arguments: str) -> str:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, *arguments], cwd=ROOT, env=environment, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def steps(output: str) -> dict[str, str]:
    """Each numbered step's text, by its number."""
    parts = _STEP.split(output)
    return dict(zip(parts[1::2], parts[2::2]))


def counted(text: str) -> Counter:
    """``"created 40, unchanged 1"`` -> the writes it names; ``"no changes"`` / ``"no entries"`` -> none."""
    pairs = (item.rsplit(" ", 1) for item in text.strip().split(", ") if item[-1:].isdigit())
    return Counter({name: int(number) for name, number in pairs})


def assert_step_tells_the_truth(number: str, text: str) -> list[tuple[str, str]]:
    runs = _RUN.findall(text)
    assert runs, f"step {number} reports no run:\n{text}"
    run_counts = sum((counted(counts) for _, _, _, counts in runs), Counter())
    reported_writes = Counter({k: v for k, v in run_counts.items() if k in _WRITES and v})
    change_log = _CHANGE_LOG.findall(text)
    assert len(change_log) == 1, f"step {number} prints no change log of its runs:\n{text}"
    assert reported_writes == counted(change_log[0]), f"step {number}'s counts and change log disagree:\n{text}"
    run_ids = {run_id for _, run_id, _, _ in runs}
    for run_id, _ in _ENTRY.findall(text):
        assert run_id in run_ids, f"step {number} prints a change of run {run_id}, which it does not report:\n{text}"
    return [(mode, counts.strip()) for mode, _, _, counts in runs]


def test_every_step_reports_the_runs_it_caused_with_counts_that_match_its_change_log():
    told = steps(run_demo("-m", "devstack", "demo"))
    for number in "12345":
        assert_step_tells_the_truth(number, told[number])
    assert _CHANGE_LOG.findall(told["3"]) == ["updated 1"]
    assert [kind for _, kind in _ENTRY.findall(told["3"])] == ["updated"]


def test_the_demo_ends_with_the_consoles_address_and_the_signed_in_operator():
    output = run_demo("-m", "devstack", "demo", "--operator", "ann@example.com", "--roles", "Sync.Reader")
    last = output.strip().splitlines()[-2:]
    assert re.fullmatch(r"Operators' console: http://127\.0\.0\.1:\d+/api/console", last[0]), output
    assert re.fullmatch(r"Signed in locally as ann@example\.com \(object id [0-9a-f-]{36}; roles Sync\.Reader\)",
                        last[1]), output
    # "sync now" needs Sync.Operator: the reader's request is refused, and the demo says so.
    assert "POST /api/ops/accounts/demo/sync -> 403" in output


def test_the_demos_sync_now_is_recorded_with_the_local_operator():
    output = run_demo("-m", "devstack", "demo")
    assert re.search(r"-> 202 in \d+ ms \(queued on sync-units, by local-operator@localhost \([0-9a-f-]{36}\)\)",
                     output), output


def test_the_incremental_step_reports_the_drain_of_a_pending_webhook_event_with_the_change_it_made():
    told = steps(run_demo("-c", _LATE_EVENT_BOOKKEEPING))
    for number in "12345":
        assert_step_tells_the_truth(number, told[number])
    # The drain synced Fabrikam first, so the incremental run found it unchanged.
    assert assert_step_tells_the_truth("3", told["3"]) == [("customer", "updated 1"), ("incremental", "unchanged 1")]
