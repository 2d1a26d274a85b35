"""A lane of the shared budget as the Partner Center client sees it: what runs hold and pass around."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .shared import SharedRequestBudget


class LaneBudget:
    """One lane of a :class:`SharedRequestBudget`, with the interface the Partner Center client uses."""

    def __init__(self, budget: "SharedRequestBudget", name: str, *, first: bool = False) -> None:
        self.budget = budget
        self.name = name
        self.first = first

    @property
    def per_minute(self) -> int:
        return self.budget.per_minute

    def acquire(self, deadline: float | None = None) -> None:
        """Block until a request may start; raise DeadlineExceeded if that is past ``deadline``."""
        self.budget.acquire(self.name, deadline, first=self.first)

    def first_in_line(self) -> "LaneBudget":
        """The same lane, its calls going before this process's other calls on it."""
        return LaneBudget(self.budget, self.name, first=True)

    def pause(self, seconds: float) -> None:
        """Hold every lane of every instance of the account back for ``seconds`` (a 429)."""
        self.budget.pause(seconds)

    def lane(self, name: str) -> "LaneBudget":
        """Another lane of the same budget."""
        return self.budget.lane(name)
