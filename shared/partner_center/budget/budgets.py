"""The shared budgets of one worker process, held once by whoever wires the application: every run
and thread of an account books through the same slices, so first in line holds across runs."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from azure.data.tables import TableClient

from .lanes import LaneBudget
from .ledger import BACKGROUND
from .shared import SharedRequestBudget


@dataclass(frozen=True)
class BudgetConfig:
    """An account budget's figures, for all instances together (the caller reads them from its settings)."""

    per_minute: int
    interactive_reserve_percent: float = 10.0
    fallback_instances: int = 4
    interactive_max_percent: float = 50.0


class RequestBudgets:
    """One :class:`SharedRequestBudget` per account and table; thread-safe."""

    def __init__(self) -> None:
        self._budgets: dict[tuple[str, str, str], SharedRequestBudget] = {}
        self._lock = threading.Lock()

    def lane(self, table: TableClient, account_id: str, config: BudgetConfig, lane: str = BACKGROUND) -> LaneBudget:
        """The account's budget in ``table`` as one ``lane``: the same budget every time for the same
        account and table, built anew only if ``config`` changed."""
        key = (table.url, table.table_name, account_id)
        with self._lock:
            budget = self._budgets.get(key)
            if budget is None or self._config(budget) != config:
                budget = self._budgets[key] = SharedRequestBudget(
                    table, account_id, config.per_minute,
                    interactive_reserve_percent=config.interactive_reserve_percent,
                    interactive_max_percent=config.interactive_max_percent,
                    fallback_instances=config.fallback_instances,
                    paced=(BACKGROUND,),  # timers and walks have time; the interactive lane does not
                )
        return budget.lane(lane)

    @staticmethod
    def _config(budget: SharedRequestBudget) -> BudgetConfig:
        return BudgetConfig(budget.per_minute, budget.interactive_reserve_percent, budget.fallback_instances,
                            budget.interactive_max_percent)
