"""The organization store and the sync's own state, in Azure Table Storage.

Every class takes a :class:`Tables` (one service client and the table names) by constructor, so
tests point it at Azurite with uniquely prefixed tables and nothing is patched.
"""

from shared.store.changes import ChangeEntry, ChangeLog
from shared.store.failures import CustomerFailure, FailureLedger
from shared.store.held import APPROVED, APPROVING, PENDING, REJECTED, HeldEnding, HeldEndingDecided, HeldEndings
from shared.keys import InvalidKey, account_key, tenant_key
from shared.store.organizations import (
    CREATE,
    END,
    EXCLUDE,
    INCLUDE,
    STATUS_ACTIVE,
    STATUS_EXCLUDED,
    STATUS_RELATIONSHIP_ENDED,
    UPDATE,
    OrganizationState,
    OrganizationStore,
    OrganizationWrite,
    WriteStats,
    next_version,
    organization_state,
    skipped_over_exclusion,
)
from shared.store.runs import COMPLETED_OUTCOMES, COUNT_NAMES, RunLog, RunRecord
from shared.store.state import Checkpoint, Lease, LeaseLost, SyncState
from shared.store.tables import ConcurrencyConflict, StoreError, TableNames, Tables
from shared.store.walk import ReconciliationWalk

__all__ = [
    "APPROVED",
    "APPROVING",
    "COMPLETED_OUTCOMES",
    "COUNT_NAMES",
    "CREATE",
    "END",
    "EXCLUDE",
    "INCLUDE",
    "PENDING",
    "REJECTED",
    "STATUS_ACTIVE",
    "STATUS_EXCLUDED",
    "STATUS_RELATIONSHIP_ENDED",
    "UPDATE",
    "ChangeEntry",
    "ChangeLog",
    "Checkpoint",
    "ConcurrencyConflict",
    "CustomerFailure",
    "FailureLedger",
    "HeldEnding",
    "HeldEndingDecided",
    "HeldEndings",
    "InvalidKey",
    "Lease",
    "LeaseLost",
    "OrganizationState",
    "OrganizationStore",
    "OrganizationWrite",
    "ReconciliationWalk",
    "RunLog",
    "RunRecord",
    "StoreError",
    "SyncState",
    "TableNames",
    "Tables",
    "WriteStats",
    "account_key",
    "next_version",
    "organization_state",
    "skipped_over_exclusion",
    "tenant_key",
]
