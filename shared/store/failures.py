"""Customers whose sync keeps failing (CustomerFailures table, docs/execution-model.md).

PartitionKey = account id, RowKey = customer tenant id. A row exists only while the customer is
failing: success clears it. After ``quarantine_after`` failures in a row the customer is
quarantined (visible in status) until it succeeds again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Iterable

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import UpdateMode

from shared.keys import account_key, require_utc, tenant_key, token_key, utc_now
from shared.store.tables import ConcurrencyConflict, Tables, delete_found

DEFAULT_QUARANTINE_AFTER = 5
_MAX_ERROR_CHARS = 500
_ATTEMPTS = 3


@dataclass(frozen=True)
class CustomerFailure:
    """A failing customer: how often in a row, the last error, the last run, quarantined or not."""

    tenant_id: str
    count: int
    last_error: str
    last_run_id: str
    last_failed_at: datetime
    quarantined: bool


class FailureLedger:
    """Counts per-customer failures and quarantines repeat offenders."""

    def __init__(
        self,
        tables: Tables,
        quarantine_after: int = DEFAULT_QUARANTINE_AFTER,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        if quarantine_after < 1:
            raise ValueError("quarantine_after must be at least 1")
        self._table = tables.failures
        self._quarantine_after = quarantine_after
        self._clock = clock

    def record_failure(self, account_id: str, tenant_id: str, error: str, run_id: str) -> CustomerFailure:
        """Count one more failure for the customer. ``error`` must be short and secret-free."""
        account, tenant, run = account_key(account_id), tenant_key(tenant_id), token_key(run_id, "run id")
        for _ in range(_ATTEMPTS):
            try:
                current = self._table.get_entity(account, tenant)
            except ResourceNotFoundError:
                current = None
            count = (int(current["Count"]) if current else 0) + 1
            entity = {
                "PartitionKey": account,
                "RowKey": tenant,
                "Count": count,
                "LastError": error[:_MAX_ERROR_CHARS],
                "LastRunId": run,
                "LastFailedAt": self._clock(),
                "Quarantined": count >= self._quarantine_after,
            }
            try:
                if current is None:
                    self._table.create_entity(entity)
                else:
                    self._table.update_entity(
                        entity,
                        mode=UpdateMode.REPLACE,
                        etag=current.metadata["etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
                continue  # another writer counted at the same moment: read again and recount
            return _failure(entity)
        raise ConcurrencyConflict(f"failure count of {tenant} kept changing under concurrent writers")

    def clear(self, account_id: str, tenant_ids: Iterable[str]) -> None:
        """Forget the failures of customers that succeeded. Pass only tenants known to have failed:
        each is one delete (a missing row is fine)."""
        account = account_key(account_id)
        for tenant_id in tenant_ids:
            self._table.delete_entity(account, tenant_key(tenant_id))

    def failing(self, account_id: str) -> dict[str, CustomerFailure]:
        """Every currently failing customer of the account, quarantined or not."""
        query = self._table.query_entities("PartitionKey eq @pk", parameters={"pk": account_key(account_id)})
        return {entity["RowKey"]: _failure(entity) for entity in query}

    def quarantined(self, account_id: str) -> dict[str, CustomerFailure]:
        """The account's quarantined customers."""
        query = self._table.query_entities(
            "PartitionKey eq @pk and Quarantined eq @quarantined",
            parameters={"pk": account_key(account_id), "quarantined": True},
        )
        return {entity["RowKey"]: _failure(entity) for entity in query}

    def prune(self, account_id: str, before: datetime, may_continue: Callable[[], bool]) -> tuple[int, bool]:
        """Delete failures no run has seen since ``before`` (the customer is no longer listed: a
        customer that succeeds loses its row at once, one still listed fails again every night)."""
        return delete_found(self._table, "PartitionKey eq @pk and LastFailedAt lt @before",
                            {"pk": account_key(account_id), "before": require_utc(before, "before")},
                            may_continue=may_continue)


def _failure(entity) -> CustomerFailure:
    return CustomerFailure(
        tenant_id=entity["RowKey"],
        count=int(entity["Count"]),
        last_error=entity.get("LastError", ""),
        last_run_id=entity.get("LastRunId", ""),
        last_failed_at=require_utc(entity["LastFailedAt"], "LastFailedAt"),
        quarantined=bool(entity.get("Quarantined", False)),
    )
