"""A new account's first day: while the first walk spans invocations, each incremental run does its
own job (what the activity log names, customers new to pages the walk has passed) and leaves the
customers the walk has not reached to the walk."""

from __future__ import annotations

from shared.store import STATUS_ACTIVE
from tests.sync.conftest import ACCOUNT

SILENT_LOG = {"totalCount": 0, "items": [], "links": {}}


def status_of(stores, tenant: str) -> str | None:
    row = stores.organizations.get(ACCOUNT, tenant)
    return row["Status"] if row else None


def test_incremental_runs_between_the_invocations_of_a_first_walk_do_their_own_job(make_sync, stores, pc):
    for _ in range(35):
        pc.accept_relationship()  # 60 customers, 6 pages of 10, all accepted before the first walk
    # One page per walk invocation (a 1 s budget); incremental runs do not continue the walk here.
    walk_step = lambda: make_sync(time_budget_seconds=1).full()  # noqa: E731
    incremental = lambda: make_sync(incremental_interval_seconds=1).incremental()  # noqa: E731
    assert walk_step().outcome == "checkpointed"
    rounds = 0
    while stores.state.get_checkpoint(ACCOUNT) is not None:
        rounds += 1
        listed = [c["id"] for c in pc.customers()]
        page = stores.state.get_checkpoint(ACCOUNT).data["page"]
        behind = pc.accept_relationship(position=0)  # on a page the walk has passed
        named = listed[-1]  # the activity log names a customer on the walk's last page
        pc.update_billing_profile(named, {"lastName": f"Round{rounds}"})
        pc.reset_counters()
        result = incremental()
        assert result.outcome == "succeeded", result.error
        assert status_of(stores, behind) == STATUS_ACTIVE
        assert stores.organizations.get(ACCOUNT, named)["PrimaryLastName"] == f"Round{rounds}"
        # Nothing the walk will fetch: only the acceptance and the named customer (once created).
        assert pc.counters()["billing_profile"] == 2, (rounds, page, result.counts)
        unreached = listed[(page + 1) * 10:-1]
        assert not any(status_of(stores, t) for t in unreached), page
        silent = pc.accept_relationship(position=1)  # the activity log misses this one
        pc.inject("audit_records", "body", body=SILENT_LOG, times=5)
        pc.reset_counters()
        quiet = incremental()
        pc.clear_faults()
        assert quiet.outcome == "succeeded" and status_of(stores, silent) == STATUS_ACTIVE
        assert pc.counters()["billing_profile"] == 1
        walk_step()
    assert rounds >= 4
    assert {o["RowKey"] for o in stores.organizations.list(ACCOUNT) if o["Status"] == STATUS_ACTIVE} == \
        {c["id"] for c in pc.customers()}


def test_a_partial_run_that_made_progress_is_no_failed_command_but_one_that_made_none_is(monkeypatch, tmp_path):
    from shared import cli
    from shared.store.runs import RunOutcome
    from shared.app import App
    from shared.sync.engine import RunCounts, RunResult

    monkeypatch.chdir(tmp_path)
    progress = RunResult(ACCOUNT, "incremental", "r1", RunOutcome.PARTIAL, counts=RunCounts(created=3))
    nothing = RunResult(ACCOUNT, "incremental", "r2", RunOutcome.PARTIAL)
    monkeypatch.setattr(App, "run_accounts", lambda app, mode, account_id=None: [progress])
    assert cli.main(["sync", "incremental"]) == 0
    monkeypatch.setattr(App, "run_accounts", lambda app, mode, account_id=None: [nothing])
    assert cli.main(["sync", "incremental"]) == 1
