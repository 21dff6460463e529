"""Scoring split into tasks of bounded memory: what one task reads, computes and returns.

A task is one variable, one init time, the leads of one stored inner chunk (a tiled chunk holds
several leads: reading them one by one would decode it once per lead) and a band of latitude
rows. ``plan_tasks`` picks the band from a memory budget: the whole grid when all members of it
fit, else as many rows as fit (fair CRPS, ranks and errors are pointwise, so the split is
exact: ``partial_sums``). A task reads its members once and its truth once (the verifying
states of its leads, the state at the init time for persistence), and returns row sums for
``SumsCollector`` to place; so the same code scores in process (``score_ensemble``), as Ray
tasks over a cluster (the ``score`` stage) and inside a hindcast as dates finish.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

from swarmcast.ops.errors import InputError
from swarmcast.ops.verification.partial_sums import (
    CHECKPOINT_SUMS,
    POINT_SUMS,
    SIZE_SUMS,
    MemberGroups,
    SpectrumSums,
    block_row_sums,
    row_sums_bytes,
    spectrum_bytes,
)

MEMBER = "member"


class MemoryBudgetError(InputError):
    """The scoring memory budget cannot hold one latitude row (or one whole field for spectra)."""


@dataclass(frozen=True)
class BlockTask:
    """One scoring task: ``variable`` at init index ``init``, leads [lead_lo, lead_hi) and rows
    [row_lo, row_hi); ``spectra``: also the whole-field spectra of those leads."""

    variable: str
    init: int
    lead_lo: int
    lead_hi: int
    row_lo: int
    row_hi: int
    spectra: bool


@dataclass(frozen=True)
class ScoringSpec:
    """What every task of one scoring run shares (small and picklable: shipped with each task)."""

    groups: MemberGroups
    seed: int
    spectra: bool
    member_batch: int
    """Whole member fields read at once for spectra when a task holds only some rows."""


def task_bytes(members: int, nlon: int, rows: int, leads: int) -> int:
    """Peak bytes of a task: its float32 slab of members and the row sums' float64 temporaries."""
    return rows * (leads * members * nlon * 4 + row_sums_bytes(members, nlon))


def plan_tasks(
    variables: Sequence[str],
    n_init: int,
    lead_spans: Sequence[int],
    members: int,
    nlat: int,
    nlon: int,
    budget_bytes: int,
    spectra: bool,
) -> tuple[list[BlockTask], int]:
    """The tasks of a scoring run and the spectra member batch, each within ``budget_bytes``.

    Raises ``MemoryBudgetError`` with the numbers when one latitude row of one stored chunk's
    leads (or one whole field, for spectra) does not fit.
    """
    widest = max(lead_spans)
    per_row = task_bytes(members, nlon, 1, widest)
    rows = min(nlat, budget_bytes // per_row)
    if rows < 1:
        raise MemoryBudgetError(
            f"memory_budget_mb: {budget_bytes / 2**20:.1f} MiB cannot hold one latitude row of the "
            f"ensemble ({members} members x {nlon} longitudes x {widest} lead(s)): it needs "
            f"{per_row / 2**20:.1f} MiB per row"
        )
    batch = members
    if spectra and rows < nlat:
        batch = min(members, budget_bytes // spectrum_bytes(nlat, nlon))
        if batch < 1:
            raise MemoryBudgetError(
                f"memory_budget_mb: {budget_bytes / 2**20:.1f} MiB cannot hold one whole field for the "
                f"spectra ({spectrum_bytes(nlat, nlon) / 2**20:.1f} MiB); raise it or set spectra: false"
            )
    tasks = []
    for v in variables:
        for i in range(n_init):
            lo = 0
            for span in lead_spans:
                for r in range(0, nlat, rows):
                    tasks.append(BlockTask(v, i, lo, lo + span, r, min(nlat, r + rows), spectra and r == 0))
                lo += span
    return tasks, batch


@dataclass
class DatasetSource:
    """Blocks of an ensemble (``open_ensemble`` layout, any chunking or none) and its truth
    aligned to it (``align_truth``: init_time, lead_time, lat, lon). ``skip``: per variable a
    bool (init, lead) mask of blocks to leave out; ``climatology``: per variable (lat, lon)."""

    ensemble: xr.Dataset
    truth: xr.Dataset
    climatology: Mapping[str, np.ndarray]
    skip: Mapping[str, np.ndarray] = field(default_factory=dict)

    def members(self, t: BlockTask, lead: slice | int, rows: slice, members: slice = slice(None)) -> np.ndarray:
        a = self.ensemble[t.variable].isel(init_time=t.init, lead_time=lead, lat=rows, member=members)
        order = ("lead_time", MEMBER, "lat", "lon") if isinstance(lead, slice) else (MEMBER, "lat", "lon")
        return np.asarray(a.transpose(*order).values)

    def truth_rows(self, t: BlockTask, lead: slice | int, rows: slice) -> np.ndarray:
        return np.asarray(self.truth[t.variable].isel(init_time=t.init, lead_time=lead, lat=rows).values, np.float64)

    def left_out(self, v: str) -> np.ndarray:
        shape = (self.ensemble.sizes["init_time"], self.ensemble.sizes["lead_time"])
        return np.asarray(self.skip[v], bool) if v in self.skip else np.zeros(shape, bool)


@dataclass
class TaskSums:
    """What a task returns: per lead of the task, the row sums (or None where the block is left
    out) and the spectra (3, degree) when the task computed them."""

    task: BlockTask
    rows: list[dict[str, np.ndarray] | None]
    spectra: list[np.ndarray | None]
    peak_rss_bytes: int = 0
    """High-water resident memory of the process that ran the task (0: not measured)."""


def score_task(source: DatasetSource, t: BlockTask, spec: ScoringSpec) -> TaskSums:
    """Read the task's members and truth once and reduce them to row sums (``partial_sums``)."""
    rows = slice(t.row_lo, t.row_hi)
    nlat = source.ensemble.sizes["lat"]
    whole = t.row_lo == 0 and t.row_hi == nlat
    left_out = source.left_out(t.variable)[t.init]
    slab = source.members(t, slice(t.lead_lo, t.lead_hi), rows)  # (lead, member, row, lon)
    truth = source.truth_rows(t, slice(t.lead_lo, t.lead_hi), rows)
    y0 = source.truth_rows(t, 0, rows)
    clim = np.asarray(source.climatology[t.variable], np.float64)[rows]
    index = np.arange(t.row_lo, t.row_hi)
    # rank ties are broken by the init *time*, not its index, so a date scored alone (online)
    # breaks them as it does among all dates
    init_key = int(np.datetime64(source.ensemble["init_time"].values[t.init], "m").astype(np.int64))
    out = TaskSums(t, [], [])
    for k, j in enumerate(range(t.lead_lo, t.lead_hi)):
        if left_out[j]:
            out.rows.append(None)
            out.spectra.append(None)
            continue
        x = slab[k].astype(np.float64)
        out.rows.append(block_row_sums(x, truth[k], y0, clim, spec.groups, index, (spec.seed, init_key, j)))
        if not (spec.spectra and t.spectra):
            out.spectra.append(None)
            continue
        acc = SpectrumSums(truth[k] if whole else source.truth_rows(t, j, slice(None)))
        if whole:
            acc.add(x)
        else:  # this task holds a band of rows: whole fields in member batches that fit the budget
            m = spec.groups.members
            for b in range(0, m, spec.member_batch):
                acc.add(source.members(t, j, slice(None), slice(b, b + spec.member_batch)).astype(np.float64))
        out.spectra.append(acc.result())
    return out


class SumsCollector:
    """The sums of a whole scoring run, filled task by task (``add``), as an ``xr.Dataset``
    (``dataset``): ``sum_*`` (variable, init_time, lead_time, lat[, rank | draw | checkpoint]),
    ``block_spectrum_*`` (variable, init_time, lead_time, degree) and ``block_scored``."""

    def __init__(self, variables: Sequence[str], n_init: int, n_lead: int, nlat: int, groups: MemberGroups) -> None:
        self.variables = list(variables)
        self.shape = (len(self.variables), n_init, n_lead, nlat)
        self.groups = groups
        extra = {"rank_counts": (groups.members + 1,)}
        extra |= {k: (len(groups.draws),) for k in SIZE_SUMS} | {k: (len(groups.checkpoints),) for k in CHECKPOINT_SUMS}
        self.sums = {
            k: np.zeros(self.shape + extra.get(k, ()), np.int64 if k == "rank_counts" else np.float64)
            for k in (*POINT_SUMS, *extra)
        }
        self.spectra: np.ndarray | None = None
        self.scored = np.zeros(self.shape[:3], bool)

    def add(self, result: TaskSums) -> None:
        t = result.task
        v = self.variables.index(t.variable)
        for j, (rows, spec) in enumerate(zip(result.rows, result.spectra, strict=True), start=t.lead_lo):
            if rows is None:
                continue
            self.scored[v, t.init, j] = True
            for name, value in rows.items():
                self.sums[name][v, t.init, j, t.row_lo : t.row_hi] = value
            if spec is not None:
                if self.spectra is None:
                    self.spectra = np.full((*self.shape[:3], *spec.shape), np.nan)
                self.spectra[v, t.init, j] = spec

    def dataset(self, ensemble: xr.Dataset, units: Sequence[str], seed: int) -> xr.Dataset:
        """The sums with the coordinates of ``ensemble`` (the opened store the tasks read)."""
        from swarmcast.ops.verification.sums_store import sums_dataset  # the layout lives there

        return sums_dataset(self, ensemble, units, seed)


__all__ = [
    "BlockTask",
    "DatasetSource",
    "MemoryBudgetError",
    "ScoringSpec",
    "SumsCollector",
    "TaskSums",
    "plan_tasks",
    "score_task",
    "task_bytes",
]
