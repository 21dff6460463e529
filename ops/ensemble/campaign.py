"""Hindcast campaigns: init dates released in priority order, a bounded number at a time.

HENS ran 92 init dates as a job array, two dates at a time: as soon as one date finished the
next started. ``DateWindow`` is that sliding window for the unit scheduler
(``swarmcast.pipelines.ensemble.scheduler.run_units``): it hands out the units of at most
``max_dates`` unfinished dates, and each time a date's last unit completes it reports the date
(so its summaries can be merged at once) and opens the next one. No Ray here: it is bookkeeping.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Literal

from swarmcast.ops.ensemble.store import Unit


class DateWindow:
    """Which units may run now: those of the open dates, at most ``max_dates`` of them.

    ``order`` ranks the dates (init-time indices) by priority; ``max_dates=None`` opens all at
    once. ``on_date_done(init)`` runs when a date's last unit is finished.
    """

    def __init__(
        self,
        units: Sequence[Unit],
        *,
        order: Literal["oldest-first", "newest-first"] = "oldest-first",
        max_dates: int | None = None,
        on_date_done: Callable[[int], None] | None = None,
    ) -> None:
        if max_dates is not None and max_dates < 1:
            raise ValueError(f"max_dates must be at least 1, got {max_dates}")
        self._units_of: dict[int, list[Unit]] = {}
        for u in units:
            self._units_of.setdefault(u.init, []).append(u)
        self._left = Counter({d: len(us) for d, us in self._units_of.items()})
        self._waiting = deque(sorted(self._units_of, reverse=order == "newest-first"))
        self._max = max_dates
        self._on_done = on_date_done
        self.open: set[int] = set()
        """Dates whose units have been handed out and are not all finished."""
        self.completed: list[int] = []
        """Dates in the order their last unit finished."""
        self.most_open = 0
        """The largest number of dates that were open at once."""

    def release(self) -> list[Unit]:
        """Open waiting dates up to the limit; returns their units (in date priority order)."""
        out: list[Unit] = []
        while self._waiting and (self._max is None or len(self.open) < self._max):
            date = self._waiting.popleft()
            self.open.add(date)
            out += self._units_of[date]
        self.most_open = max(self.most_open, len(self.open))
        return out

    def finished(self, unit: Unit) -> list[Unit]:
        """Record a finished unit; returns the units of any dates this opens."""
        if unit.init not in self.open:
            raise ValueError(f"unit {unit} finished but its date is not open")
        self._left[unit.init] -= 1
        if self._left[unit.init]:
            return []
        self.open.discard(unit.init)
        self.completed.append(unit.init)
        if self._on_done is not None:
            self._on_done(unit.init)
        return self.release()

    @property
    def exhausted(self) -> bool:
        """Every date released: ``finished`` will release nothing more."""
        return not self._waiting

    @property
    def done(self) -> bool:
        """Every date finished."""
        return not self.open and not self._waiting


__all__ = ["DateWindow"]
