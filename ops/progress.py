"""Progress for long stages: a bar on a terminal, periodic log lines otherwise.

Every stage ends with one summary line (``Progress.close``): what it did, how much, how fast.
"""

from __future__ import annotations

import logging
import sys
import time
from types import TracebackType

log = logging.getLogger("swarmcast")


class Progress:
    """Counts ``total`` units of ``what``; prints via tqdm on a TTY, else a log line every
    ``log_every_s`` seconds. Use as a context manager; ``summary`` is printed on close."""

    def __init__(self, what: str, total: int, unit: str = "it", *, log_every_s: float = 10.0) -> None:
        self.what, self.total, self.unit = what, total, unit
        self.done = 0
        self.summary: str | None = None
        self._t0 = time.perf_counter()
        self._last_log = self._t0
        self._log_every = log_every_s
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=what, unit=unit, leave=False)

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
            return
        now = time.perf_counter()
        if now - self._last_log >= self._log_every:
            self._last_log = now
            print(f"[{self.what}] {self.done}/{self.total} {self.unit}", file=sys.stderr, flush=True)

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self._t0

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        line = self.summary or f"{self.done}/{self.total} {self.unit}"
        print(f"[{self.what}] done: {line} in {self.elapsed:.1f} s{self.pace()}", flush=True)

    def pace(self) -> str:
        """`` (12.3 units/s)``, or `` (134.0 s per unit)`` when fewer than one a second (a
        rate of slow work rounds to 0.0/s); empty when nothing was done."""
        if self.done == 0 or self.elapsed <= 0:
            return ""
        rate = self.done / self.elapsed
        if rate >= 1:
            return f" ({rate:.1f} {self.unit}/s)"
        return f" ({self.elapsed / self.done:.1f} s per {self.unit.removesuffix('s')})"

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        elif self._bar is not None:
            self._bar.close()
