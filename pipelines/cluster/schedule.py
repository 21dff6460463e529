"""``swarmcast schedule``: a small scheduler process that submits one job per tick.

Ticks come from a five-field cron expression in UTC, evaluated by ``cronsim`` (a maintained
library that follows Vixie cron, as Kubernetes CronJobs do: day-of-month and day-of-week are
ORed when both are restricted, ``5/15`` is every 15 minutes from 5, ``7`` and names such as
``MON`` or ``JAN`` are accepted), or from a fixed interval aligned to the epoch (for tests and
quick trials). At every tick the pipeline's ``init_times: latest`` is resolved against its data
store (the newest analysis time there), and the job is submitted under a tick-stamped
submission id. A JSON-lines state file records every tick (submitted, skipped, failed to
submit). On start the scheduler handles the most recent tick if it has no job yet -- a restart
catches up the tick it missed, never older ones -- and a tick whose job already exists is
skipped, so restarts never resubmit.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cronsim import CronSim, CronSimError

from swarmcast.pipelines.config import ConfigError, load_pipeline_file

_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_ALLOWED = {
    "minute": "0..59",
    "hour": "0..23",
    "day-of-month": "1..31 (on a day the chosen months have)",
    "month": "1..12 or JAN..DEC",
    "day-of-week": "0..7 or SUN..SAT",
}


@dataclass(frozen=True)
class Schedule:
    """When ticks happen: ``previous(t)`` is the latest tick at or before t, ``next(t)`` the first after."""

    previous: Callable[[datetime], datetime]
    next: Callable[[datetime], datetime]
    description: str

    @staticmethod
    def every_seconds(seconds: float) -> Schedule:
        if seconds <= 0:
            raise ConfigError("--every must be positive")

        def prev(t: datetime) -> datetime:
            return datetime.fromtimestamp((t.timestamp() // seconds) * seconds, UTC)

        return Schedule(prev, lambda t: prev(t) + timedelta(seconds=seconds), f"every {seconds:g} s")

    @staticmethod
    def from_cron(expr: str) -> Schedule:
        """A schedule from a five-field cron expression (minute hour day-of-month month day-of-week), UTC."""
        fields = expr.split()
        if len(fields) != 5:
            raise ConfigError(f"--cron {expr!r}: needs 5 fields (minute hour day-of-month month day-of-week)")
        try:
            CronSim(expr, datetime(2000, 1, 1, tzinfo=UTC))
        except CronSimError as err:  # "Bad hour": name the field, its text and what it may hold
            name = str(err).removeprefix("Bad ")
            if name in _FIELDS:
                text = fields[_FIELDS.index(name)]
                raise ConfigError(
                    f"--cron {expr!r}: the {name} field {text!r} is invalid or outside {_ALLOWED[name]}"
                ) from None
            raise ConfigError(f"--cron {expr!r}: {err}") from None

        def prev(t: datetime) -> datetime:
            # cronsim's reverse iteration yields ticks strictly before its start: start a minute on
            minute = t.astimezone(UTC).replace(second=0, microsecond=0)
            return next(CronSim(expr, minute + timedelta(minutes=1), reverse=True))

        def following(t: datetime) -> datetime:
            return next(CronSim(expr, t.astimezone(UTC)))

        return Schedule(prev, following, f"cron {expr!r}")


def _record(state: Path, entry: dict) -> None:
    with state.open("a") as f:
        f.write(json.dumps(entry) + "\n")


def _done_ticks(state: Path) -> set[str]:
    if not state.exists():
        return set()
    entries = [json.loads(line) for line in state.read_text().splitlines() if line.strip()]
    return {
        e["tick"] for e in entries if e["action"] in ("submitted", "already ran; not resubmitted", "already running")
    }


def run_schedule(
    path: Path,
    overrides: list[str],
    schedule: Schedule,
    *,
    address: str,
    state: Path,
    max_ticks: int | None = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> int:
    """Submit one job per tick until ``max_ticks`` ticks were handled; returns the ticks handled."""
    from swarmcast.pipelines.cluster.jobs import ClusterError, latest_init_time, submission_id, submit

    load_pipeline_file(path, overrides)  # a broken pipeline fails now, not at the first tick
    print(f"swarmcast schedule: {path} {schedule.description}; state {state}", flush=True)
    tick = schedule.previous(now())
    handled = 0
    while max_ticks is None or handled < max_ticks:
        stamp = tick.strftime("%Y%m%dT%H%M%S")
        if stamp in _done_ticks(state):
            entry = {"tick": stamp, "action": "skipped: this tick's job already ran"}
        else:
            resolved = [*overrides, *latest_init_time(path, overrides)]
            pipeline, raw = load_pipeline_file(path, resolved)
            sid = f"{submission_id(pipeline, raw, path.resolve().parent)}-at-{stamp}"
            try:
                result = submit(path, overrides, address=address, job_id=sid)
                entry = {"tick": stamp, "action": result["action"], "submission_id": result["submission_id"]}
            except ClusterError as err:  # the cluster may be down: record, and try at the next tick
                entry = {"tick": stamp, "action": "failed to submit", "error": str(err).splitlines()[0]}
        entry["at"] = now().isoformat()
        _record(state, entry)
        print(json.dumps(entry), flush=True)
        handled += 1
        if max_ticks is not None and handled >= max_ticks:
            break
        tick = schedule.next(tick)
        while now() < tick:
            time.sleep(min(1.0, max(0.05, (tick - now()).total_seconds())))
    return handled


__all__ = ["Schedule", "run_schedule"]
