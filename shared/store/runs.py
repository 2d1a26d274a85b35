"""The run log (docs/storage.md): one row per run with mode, times, outcome, counts and API calls.

PartitionKey = account id; RowKey = run id, an inverted timestamp plus a short random part, so a
partition query returns the newest runs first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Callable, Mapping

from azure.core import MatchConditions
from azure.core.exceptions import ResourceModifiedError
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
        self._table.create_entity(
            {
                "PartitionKey": record.account_id,
                "RowKey": record.run_id,
                "Mode": mode,
                "StartedAt": started,
                "Outcome": str(OUTCOME_RUNNING),
                **({"By": record.by} if record.by else {}),
            }
        )
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
        self._table.update_entity(entity, mode=UpdateMode.MERGE)
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
        return self._first("PartitionKey eq @pk and Outcome eq @running",
                           {"pk": account_key(account_id), "running": str(RunOutcome.RUNNING)}, 1000)

    def abandon(self, record: RunRecord, reason: str) -> None:
        """Close a run its process never finished; a run that finished meanwhile is left alone."""
        current = self._table.get_entity(record.account_id, record.run_id)
        if current.get("Outcome") != RunOutcome.RUNNING:
            return
        try:
            self._table.update_entity(
                {"PartitionKey": record.account_id, "RowKey": record.run_id, "Outcome": str(RunOutcome.ABANDONED),
                 "FinishedAt": self._clock(), "Error": reason[:_MAX_ERROR_CHARS]},
                mode=UpdateMode.MERGE, etag=current.metadata["etag"], match_condition=MatchConditions.IfNotModified,
            )
        except ResourceModifiedError:
            pass  # its process wrote the row since we read it: alive after all, finishing on its own

    def abandoned(self, account_id: str, limit: int = 10) -> list[RunRecord]:
        """The account's newest runs closed as abandoned."""
        return self._first("PartitionKey eq @pk and Outcome eq @abandoned",
                           {"pk": account_key(account_id), "abandoned": str(RunOutcome.ABANDONED)}, limit)

    def latest(self, account_id: str, mode: str | None = None, limit: int = 10) -> list[RunRecord]:
        """The account's newest runs (of one ``mode`` when given), newest first."""
        query_filter, parameters = "PartitionKey eq @pk", {"pk": account_key(account_id)}
        if mode is not None:
            query_filter += " and Mode eq @mode"
            parameters["mode"] = mode
        return self._first(query_filter, parameters, limit)

    def since(self, account_id: str, since: datetime, limit: int = 1000) -> list[RunRecord]:
        """The account's runs started at or after ``since``, newest first (run ids sort newest first,
        so this reads only those rows)."""
        return self._first("PartitionKey eq @pk and RowKey lt @bound",
                           {"pk": account_key(account_id), "bound": newest_first_bound(require_utc(since, "since"))},
                           limit)

    def last_completed(
        self, account_id: str, mode: str, outcomes: tuple[str, ...] = COMPLETED_OUTCOMES
    ) -> RunRecord | None:
        """The newest run of ``mode`` that finished with one of ``outcomes``, or ``None``."""
        parameters = {"pk": account_key(account_id), "mode": mode}
        alternatives = []
        for index, outcome in enumerate(outcomes):
            parameters[f"o{index}"] = str(outcome)
            alternatives.append(f"Outcome eq @o{index}")
        # Parameters must stand between spaces: the SDK substitutes whole words.
        query_filter = f"PartitionKey eq @pk and Mode eq @mode and ( {' or '.join(alternatives)} )"
        found = self._first(query_filter, parameters, 1)
        return found[0] if found else None

    def prune(self, account_id: str, before: datetime, may_continue: Callable[[], bool]) -> tuple[int, bool]:
        """Delete the account's runs started before ``before``, except runs still marked running and
        the newest run and newest completed run of each mode (status shows them); ``(deleted, finished)``."""
        kept: dict[str, set[str]] = {}

        def keep(entity: Mapping) -> bool:
            mode = entity.get("Mode", "")
            if mode not in kept:
                newest = self.latest(account_id, mode, limit=1) if mode else []
                completed = self.last_completed(account_id, mode) if mode else None
                kept[mode] = {r.run_id for r in [*newest, completed] if r is not None}
            return entity.get("Outcome") == RunOutcome.RUNNING or entity["RowKey"] in kept[mode]

        return delete_found(self._table, "PartitionKey eq @pk and StartedAt lt @before",
                            {"pk": account_key(account_id), "before": require_utc(before, "before")},
                            may_continue=may_continue, keep=keep, select=["Mode", "Outcome"])

    def _first(self, query_filter: str, parameters: dict, limit: int) -> list[RunRecord]:
        query = self._table.query_entities(query_filter, parameters=parameters, results_per_page=min(limit, 1000))
        records = []
        for entity in query:
            records.append(_record(entity))
            if len(records) >= limit:
                break
        return records


def _record(entity: Mapping) -> RunRecord:
    finished = entity.get("FinishedAt")
    return RunRecord(
        account_id=entity["PartitionKey"],
        run_id=entity["RowKey"],
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
