"""The run log (docs/storage.md): one row per run with mode, times, outcome, counts and API calls.

PartitionKey = account id; RowKey = run id, an inverted timestamp plus a short random part, so a
partition query returns the newest runs first.

What the hot paths ask is read by key, whatever the history (docs/storage.md#hot-paths-read-by-key):

- the newest run and the newest completed run of a mode: pointer rows ``~latest~{mode}`` and
  ``~completed~{mode}`` in the account's partition (their RowKeys sort after every run id), written
  in one transaction with the run row;
- runs still running, and the newest abandoned runs: copies of their rows in the small
  ``SyncRunsIndex`` table (``running~{run id}``, ``abandoned~{run id}``), so that reading them never
  touches the history (a query costs what its table holds on some stores, Azurite among them).
  Copies are written before the row changes and deleted after: one left by a crash names a run
  that is not running, which the next run start sees and deletes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Callable, Mapping

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.keys import account_key, newest_first_bound, newest_first_id, require_utc, token_key, utc_now
from shared.store.tables import Tables, delete_found


class RunOutcome(StrEnum):
    """How a run ended, as the run log stores it (the values are the stored strings)."""

    RUNNING = "running"  # not ended yet, or its process died: the next run closes it as abandoned
    SUCCEEDED = "succeeded"
    SUCCEEDED_WITH_FAILURES = "succeeded_with_failures"  # done; some customers failed on their own
    CHECKPOINTED = "checkpointed"  # a reconciliation stopped at its time budget; the next run continues
    PARTIAL = "partial"  # an incremental run ran out of time; its watermark stayed
    FAILED = "failed"  # something beyond one customer stopped the run (the error says what)
    SKIPPED = "skipped"  # another run held the account, or the invocation had no time left
    ABANDONED = "abandoned"  # found still "running" after its lease was gone: the process died
    PARKED = "parked"  # a queued unit given up after its last attempt


OUTCOME_RUNNING = RunOutcome.RUNNING
# Outcomes after which the run's work is done (the walk completed, the watermark moved).
COMPLETED_OUTCOMES = (RunOutcome.SUCCEEDED, RunOutcome.SUCCEEDED_WITH_FAILURES)
COUNT_NAMES = ("created", "updated", "unchanged", "ended", "failed", "held", "excluded_skipped")
_MAX_ERROR_CHARS = 1000
# Table property names for the counts ("excluded_skipped" -> "ExcludedSkipped").
_COUNT_COLUMNS = {name: "".join(part.title() for part in name.split("_")) for name in COUNT_NAMES}
# Index rows sort after every run id ('~' comes after letters, digits, '-' and '_').
_INDEX = "~"
_LATEST, _COMPLETED = "~latest~", "~completed~"
_RUNNING, _ABANDONED = "running~", "abandoned~"  # in SyncRunsIndex


@dataclass(frozen=True)
class RunRecord:
    """One run of the sync for one account."""

    account_id: str
    run_id: str
    mode: str
    started_at: datetime
    outcome: str = OUTCOME_RUNNING
    finished_at: datetime | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    api_calls: int = 0
    throttled_calls: int = 0
    error: str = ""
    notes: str = ""
    by: str = ""  # who asked for the run: an operator's name and object id, "" for the timers


class RunLog:
    """Starts, finishes and lists runs."""

    def __init__(self, tables: Tables, clock: Callable[[], datetime] = utc_now) -> None:
        self._table = tables.runs
        self._index = tables.run_index
        self._clock = clock

    def start(self, account_id: str, mode: str, run_id: str | None = None, by: str = "") -> RunRecord:
        """Record that a run started and return it (its ``run_id`` names the run everywhere); ``by``
        names the operator whose decision it carries out."""
        token_key(mode, "mode")  # e.g. "incremental", "full", "manual"
        started = self._clock()
        record = RunRecord(
            account_id=account_key(account_id),
            run_id=token_key(run_id, "run id") if run_id is not None else newest_first_id(started),
            mode=mode,
            started_at=started,
            by=by[:200],
        )
        row = {"PartitionKey": record.account_id, "RowKey": record.run_id, "Mode": mode, "StartedAt": started,
               "Outcome": str(OUTCOME_RUNNING), **({"By": record.by} if record.by else {})}
        self._index.upsert_entity({**row, "RowKey": _RUNNING + record.run_id, "RunId": record.run_id})
        self._table.submit_transaction([("create", row)] + self._repoint(record.account_id, _LATEST + mode,
                                                                          record.run_id))
        return record

    def finish(
        self,
        record: RunRecord,
        outcome: str,
        counts: Mapping[str, int],
        api_calls: int,
        throttled_calls: int,
        error: str = "",
        notes: str = "",
    ) -> RunRecord:
        """Record how a run ended. ``error`` is a short, secret-free description (cut to 1000 chars);
        ``notes`` says what an operator should know of a run that did not fail (a restarted walk)."""
        if outcome == OUTCOME_RUNNING or not outcome:
            raise ValueError("a finished run needs an outcome other than 'running'")
        unknown = set(counts) - set(COUNT_NAMES)
        if unknown:
            raise ValueError(f"unknown run counts: {', '.join(sorted(unknown))}")
        finished = self._clock()
        full_counts = {name: int(counts.get(name, 0)) for name in COUNT_NAMES}
        short_error = error[:_MAX_ERROR_CHARS]
        short_notes = notes[:_MAX_ERROR_CHARS]
        entity = {
            "PartitionKey": record.account_id,
            "RowKey": record.run_id,
            "Outcome": str(outcome),
            "FinishedAt": finished,
            "ApiCalls": int(api_calls),
            "ThrottledCalls": int(throttled_calls),
            "Error": short_error,
            "Notes": short_notes,
            **{_COUNT_COLUMNS[name]: value for name, value in full_counts.items()},
        }
        operations = [("update", entity, {"mode": UpdateMode.MERGE})]
        if outcome in COMPLETED_OUTCOMES:
            operations += self._repoint(record.account_id, _COMPLETED + record.mode, record.run_id)
        self._table.submit_transaction(operations)
        self._forget(record.account_id, _RUNNING + record.run_id)
        return RunRecord(
            account_id=record.account_id,
            run_id=record.run_id,
            mode=record.mode,
            started_at=record.started_at,
            outcome=str(outcome),
            finished_at=finished,
            counts=full_counts,
            api_calls=int(api_calls),
            throttled_calls=int(throttled_calls),
            error=short_error,
            notes=short_notes,
            by=record.by,
        )

    def running(self, account_id: str) -> list[RunRecord]:
        """The account's runs still marked running (a crash leaves them so), newest first."""
        return self._listed(account_id, _RUNNING, 1000)

    def abandon(self, record: RunRecord, reason: str) -> None:
        """Close a run its process never finished; a run that finished meanwhile is left alone."""
        try:
            current = self._table.get_entity(record.account_id, record.run_id)
        except ResourceNotFoundError:
            current = None
        if current is not None and current.get("Outcome") == RunOutcome.RUNNING:
            closed = {"PartitionKey": record.account_id, "RowKey": record.run_id,
                      "Outcome": str(RunOutcome.ABANDONED), "FinishedAt": self._clock(),
                      "Error": reason[:_MAX_ERROR_CHARS]}
            copy = {**{k: v for k, v in current.items() if k not in ("PartitionKey", "RowKey")}, **closed,
                    "RowKey": _ABANDONED + record.run_id, "RunId": record.run_id}
            self._index.upsert_entity(copy)  # first: an abandoned run is never missing from the list
            try:
                self._table.update_entity(closed, mode=UpdateMode.MERGE, etag=current.metadata["etag"],
                                          match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                # Its process wrote the row since we read it: alive after all, finishing on its own.
                self._forget(record.account_id, _ABANDONED + record.run_id)
                return
        # Closed now, or finished (or pruned) after all: its running copy goes.
        self._forget(record.account_id, _RUNNING + record.run_id)

    def abandoned(self, account_id: str, limit: int = 10) -> list[RunRecord]:
        """The account's newest runs closed as abandoned."""
        return self._listed(account_id, _ABANDONED, limit)

    def latest(self, account_id: str, mode: str | None = None, limit: int = 10) -> list[RunRecord]:
        """The account's newest runs (of one ``mode`` when given), newest first: a range read that
        stops at ``limit``. For one mode's newest run, :meth:`newest` reads by key whatever the mode."""
        query_filter, parameters = "PartitionKey eq @pk and RowKey lt @index", {"pk": account_key(account_id),
                                                                                "index": _INDEX}
        if mode is not None:
            query_filter += " and Mode eq @mode"
            parameters["mode"] = mode
        return self._first(query_filter, parameters, limit)

    def newest(self, account_id: str, mode: str) -> RunRecord | None:
        """The newest run of ``mode``, or ``None``."""
        return self._pointed(account_id, _LATEST, token_key(mode, "mode"), ())

    def last_completed(self, account_id: str, mode: str) -> RunRecord | None:
        """The newest run of ``mode`` that completed (:data:`COMPLETED_OUTCOMES`), or ``None``."""
        return self._pointed(account_id, _COMPLETED, token_key(mode, "mode"), COMPLETED_OUTCOMES)

    def since(self, account_id: str, since: datetime, limit: int = 1000) -> list[RunRecord]:
        """The account's runs started at or after ``since``, newest first (run ids sort newest first,
        so this reads only those rows; the pointers sort after every run id)."""
        return self._first("PartitionKey eq @pk and RowKey lt @bound",
                           {"pk": account_key(account_id), "bound": newest_first_bound(require_utc(since, "since"))},
                           limit)

    def prune(self, account_id: str, before: datetime, may_continue: Callable[[], bool]) -> tuple[int, bool]:
        """Delete the account's runs started before ``before``, except runs still running and the
        newest run and newest completed run of each mode (status shows them), and the abandoned
        copies as old; ``(deleted, finished)``. Run ids sort newest first: only old rows are read."""
        account, bound = account_key(account_id), newest_first_bound(before)
        index = self._table.query_entities("PartitionKey eq @pk and RowKey ge @index",
                                           parameters={"pk": account, "index": _INDEX}, select=["RowKey", "RunId"])
        kept = {entity.get("RunId") for entity in index}
        kept |= {run.run_id for run in self.running(account_id)}
        deleted, finished = delete_found(
            self._table, "PartitionKey eq @pk and RowKey gt @bound and RowKey lt @index",
            {"pk": account, "bound": bound, "index": _INDEX}, may_continue=may_continue,
            keep=lambda entity: entity["RowKey"] in kept or require_utc(entity["StartedAt"], "StartedAt") >= before,
            select=["StartedAt"])
        if not finished:
            return deleted, False
        copies, finished = delete_found(
            self._index, "PartitionKey eq @pk and RowKey gt @bound and RowKey lt @end",
            {"pk": account, "bound": _ABANDONED + bound, "end": _ABANDONED + _INDEX}, may_continue=may_continue)
        return deleted + copies, finished

    def _pointed(self, account_id: str, kind: str, mode: str, outcomes: tuple[str, ...]) -> RunRecord | None:
        account = account_key(account_id)
        try:
            run_id = self._table.get_entity(account, kind + mode, select=["RunId"])["RunId"]
        except ResourceNotFoundError:
            run_id = self._point_once(account, kind + mode, mode, outcomes)
        if not run_id:
            return None  # no such run
        try:
            return _record(self._table.get_entity(account, run_id))
        except ResourceNotFoundError:
            return None  # pruned meanwhile

    def _repoint(self, account: str, pointer: str, run_id: str) -> list[tuple]:
        """The upsert that points ``pointer`` at ``run_id``, unless it points at a newer run already
        (runs of one mode may start and finish out of order)."""
        try:
            current = self._table.get_entity(account, pointer, select=["RunId"]).get("RunId") or ""
        except ResourceNotFoundError:
            current = ""
        if current and current <= run_id:  # newest first: a smaller id is a newer run
            return []
        return [("upsert", _pointer(account, pointer, run_id))]

    def _point_once(self, account: str, pointer: str, mode: str, outcomes: tuple[str, ...]) -> str:
        """A run log kept before the pointers existed: find the run by scanning, once, and store the
        pointer ("" for none; a run started meanwhile wrote its own, which wins)."""
        parameters = {"pk": account, "index": _INDEX, "mode": mode}
        chosen = [f"Outcome eq @o{index}" for index in range(len(outcomes))]
        parameters.update({f"o{index}": str(outcome) for index, outcome in enumerate(outcomes)})
        # Parameters must stand between spaces: the SDK substitutes whole words.
        wanted = f" and ( {' or '.join(chosen)} )" if chosen else ""
        found = self._first(f"PartitionKey eq @pk and RowKey lt @index and Mode eq @mode{wanted}", parameters, 1)
        run_id = found[0].run_id if found else ""
        try:
            self._table.create_entity(_pointer(account, pointer, run_id))
        except ResourceExistsError:
            pass
        return run_id

    def _listed(self, account_id: str, prefix: str, limit: int) -> list[RunRecord]:
        """The copies of one kind in SyncRunsIndex, newest run first."""
        query = self._index.query_entities(
            "PartitionKey eq @pk and RowKey gt @low and RowKey lt @high",
            parameters={"pk": account_key(account_id), "low": prefix, "high": prefix + _INDEX},
            results_per_page=min(limit, 1000))
        return [_record(entity) for entity in itertools.islice(query, limit)]

    def _forget(self, account: str, row_key: str) -> None:
        try:
            self._index.delete_entity(account, row_key)
        except ResourceNotFoundError:
            pass  # a run started before the index existed has none

    def _first(self, query_filter: str, parameters: dict, limit: int) -> list[RunRecord]:
        query = self._table.query_entities(query_filter, parameters=parameters, results_per_page=min(limit, 1000))
        records = []
        for entity in query:
            records.append(_record(entity))
            if len(records) >= limit:
                break
        return records


def _pointer(account: str, row_key: str, run_id: str) -> dict:
    return {"PartitionKey": account, "RowKey": row_key, "RunId": run_id}


def _record(entity: Mapping) -> RunRecord:
    finished = entity.get("FinishedAt")
    return RunRecord(
        account_id=entity["PartitionKey"],
        run_id=entity.get("RunId") or entity["RowKey"],
        mode=entity.get("Mode", ""),
        started_at=require_utc(entity["StartedAt"], "StartedAt"),
        outcome=entity.get("Outcome", ""),
        finished_at=require_utc(finished, "FinishedAt") if finished else None,
        counts={name: int(entity.get(column, 0)) for name, column in _COUNT_COLUMNS.items()},
        api_calls=int(entity.get("ApiCalls", 0)),
        throttled_calls=int(entity.get("ThrottledCalls", 0)),
        error=entity.get("Error", ""),
        notes=entity.get("Notes", ""),
        by=entity.get("By", ""),
    )
