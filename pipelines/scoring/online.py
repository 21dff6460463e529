"""Scores computed while a hindcast runs (its ``score:`` section), the same sums as ``score``.

When the last unit of an init date finishes, that date's scoring tasks (``fanout``) are
submitted at once, and run on the CPUs the actors leave free while later dates compute; when
they are back, the date's partial sums are saved (``<output>.partial/<date>.zarr``) and the
date is final. When the campaign ends, the dates' sums are joined, finished
(``ops.verification.finish``) and published as the scores store; the partial folder goes.
A killed campaign resumes: saved dates are not scored again, finished dates without saved sums
are scored first.

Why members are read back rather than summed inside the actors: the fair CRPS needs every pair
of members of a point, the sub-ensemble draws and the per-checkpoint scores mix members of
different units, and ranks need all members at once. Per-unit state that merges exactly would
be the members themselves. So a variable that is scored but not stored (``variables: []``)
is written by the actors to a scratch ensemble store beside the output
(``<output>.scoring-scratch.zarr``), and each date's scratch shards are deleted as soon as its
sums are saved: the scratch holds at most the dates the campaign has open
(``campaign.max_concurrent_dates``), never the campaign.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import ray
import xarray as xr

from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.ensemble.store import EnsembleLayout, create_ensemble_store
from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import Location, is_remote, location, output_exists, publish, staging
from swarmcast.ops.verification.blocks import MemoryBudgetError, ScoringSpec, SumsCollector, plan_tasks
from swarmcast.ops.verification.finish import finish_scores
from swarmcast.ops.verification.partial_sums import MemberGroups
from swarmcast.ops.verification.scoring import check_request
from swarmcast.ops.verification.sums_store import MismatchedSumsError, check_same_sums, sums_identity
from swarmcast.pipelines.config import ConfigError
from swarmcast.pipelines.scoring.fanout import ScoringInputs, submit_tasks
from swarmcast.pipelines.scoring.settings import OnlineScoreSettings
from swarmcast.pipelines.scoring.truth import check_units, check_valid_times, climatology, nonfinite_blocks


def scratch_path(store: str | Location) -> Location:
    """The scratch ensemble store of the scored-but-not-stored variables of ``store``."""
    p = location(store)
    return p.with_name(f"{p.name}.scoring-scratch.zarr")


def _date_key(t: np.datetime64) -> str:
    return str(np.datetime64(t, "m")).replace(":", "")


@dataclass
class _Date:
    collector: SumsCollector
    refs: list = field(default_factory=list)


class OnlineScorer:
    """Scores of one hindcast's store, date by date (module docstring). ``settings``: the
    hindcast's ``score`` section; ``channel_units``: the channels to score and their units;
    ``scratch_layout``: the scratch store's layout (the scored channels not stored) or None;
    ``out``: the scores store to publish, refused when another config made it (unless
    ``overwrite``); ``attrs``: its global attributes. Every check runs here, before any work."""

    def __init__(
        self,
        settings: OnlineScoreSettings,
        layout: EnsembleLayout,
        store: Location,
        truth_path: Location,
        out: Location,
        channel_units: dict[str, str | None],
        scratch_layout: EnsembleLayout | None,
        seed: int,
        label: str,
        attrs: dict[str, str],
        overwrite: bool = False,
    ) -> None:
        self.settings, self.layout, self.store, self.out, self.label = settings, layout, store, out, label
        self.attrs = attrs
        self.scratch_layout = scratch_layout
        self.variables = list(channel_units)
        self._units = [str(u or "1") for u in channel_units.values()]
        self._truth_path = truth_path
        try:
            truth = open_climate(truth_path, self.variables)
        except InputError as err:
            raise ConfigError(f"score.truth: {err}") from None
        valid = layout.init_times[:, None] + layout.lead_times[None, :]
        check_valid_times(truth, valid, "score.truth")
        check_units(channel_units, truth, "score.variables")
        self.skip = nonfinite_blocks(truth, valid, self.variables, settings.nonfinite_truth, label)
        self.climatology = climatology(truth, self.variables)
        m = layout.n_members
        try:
            sizes = check_request(m, settings.regions, settings.ensemble_sizes)
        except (KeyError, ValueError) as err:
            raise ConfigError(f"score: {err}") from None
        labels = [c for c in layout.checkpoints for _ in range(layout.members_per_checkpoint)]
        self.groups = MemberGroups.build(labels, sizes, settings.bootstrap, seed)
        self.seed = seed
        self.identity = sums_identity(self.groups, seed, layout.lat, len(layout.lon))
        self.budget = int(settings.memory_budget_mb * 2**20)
        try:  # the budget is checked now, not when the first date is done
            plan_tasks(
                self.variables,
                1,
                [layout.leads_per_shard],
                m,
                len(layout.lat),
                len(layout.lon),
                self.budget,
                settings.spectra,
            )
        except MemoryBudgetError as err:
            raise ConfigError(f"score.{err}") from None
        self.partial = out.with_name(f"{out.name}.partial")
        self.open: dict[int, _Date] = {}
        self.tasks = 0
        self.complete = self._published()
        if output_exists(out) and not self.complete and not overwrite:
            raise ConfigError(f"score.output: {out} exists and was not made by this hindcast config; pass --overwrite")
        self.saved = set(range(len(layout.init_times))) if self.complete else self._saved_dates()

    def _published(self) -> bool:
        """Whether the scores store is there, made by this config with these sums."""
        if not output_exists(self.out):
            return False
        try:
            have = xr.open_zarr(self.out)
        except (OSError, ValueError, KeyError):
            return False
        same = have.attrs.get("swarmcast_stage") == self.attrs["swarmcast_stage"]
        return same and have.attrs.get("sums_identity") == self.identity

    def _saved_dates(self) -> set[int]:
        """Dates whose sums a previous run saved (refused when made another way)."""
        saved = set()
        keys = {_date_key(t): i for i, t in enumerate(self.layout.init_times)}
        if not self.partial.exists():
            return saved
        for f in sorted(self.partial.glob("*.zarr")):
            if f.stem not in keys:
                continue
            try:
                check_same_sums(xr.open_zarr(f, consolidated=False), self.identity, str(f))
            except MismatchedSumsError as err:
                raise ConfigError(f"score: {err}; delete {self.partial} to score again") from None
            saved.add(keys[f.stem])
        return saved

    def start_scratch(self, fresh: bool) -> None:
        """Create the scratch store (``fresh``: the hindcast store was just created) if needed."""
        if self.scratch_layout is None:
            return
        path = scratch_path(self.store)
        if fresh or not path.exists():
            seeds = np.zeros((len(self.layout.init_times), self.layout.n_members), dtype=np.int64)
            attrs = {
                "title": "swarmcast scoring scratch: members kept only until their date is scored",
                "swarmcast_stage": {"kind": "scoring-scratch", "of": self.attrs["swarmcast_stage"]},
            }
            create_ensemble_store(path, self.scratch_layout, seeds, attrs, overwrite=True)

    def date_done(self, i: int) -> None:
        """Submit date ``i``'s scoring tasks (unless saved) and save any date whose tasks are back."""
        if i not in self.saved and i not in self.open:
            self.open[i] = self._submit(i)
        self._harvest(wait=False)

    def _submit(self, i: int) -> _Date:
        lay = self.layout
        date = _Date(SumsCollector(self.variables, 1, len(lay.lead_times), len(lay.lat), self.groups))
        sources = [(self.store, [v for v in self.variables if v in lay.channels])]
        if self.scratch_layout is not None:
            sources.append((scratch_path(self.store), list(self.scratch_layout.channels)))
        for path, names in sources:
            if not names:
                continue
            spans = [lay.leads_per_shard] * (len(lay.lead_times) // lay.leads_per_shard)
            spans += [len(lay.lead_times) % lay.leads_per_shard] if len(lay.lead_times) % lay.leads_per_shard else []
            tasks, batch = plan_tasks(
                names, 1, spans, lay.n_members, len(lay.lat), len(lay.lon), self.budget, self.settings.spectra
            )
            inputs = ScoringInputs(
                path,
                self._truth_path,
                tuple(names),
                (lay.init_times[i],),
                {v: self.skip[v][i : i + 1] for v in names},
                {v: self.climatology[v] for v in names},
            )
            spec = ScoringSpec(self.groups, self.seed, self.settings.spectra, batch)
            date.refs += submit_tasks(inputs, spec, tasks, memory_budget=self.budget, cpus=self.settings.task_cpus)
            self.tasks += len(tasks)
        return date

    def _harvest(self, wait: bool) -> None:
        for i, date in list(self.open.items()):
            ready, date.refs = ray.wait(date.refs, num_returns=len(date.refs), timeout=None if wait else 0)
            for result in ray.get(ready):
                date.collector.add(result)
            if not date.refs:
                self._save(i, date.collector)
                del self.open[i]

    def _coords(self, inits: np.ndarray) -> xr.Dataset:
        lay = self.layout
        return xr.Dataset(coords={"init_time": inits, "lead_time": lay.lead_times, "lat": lay.lat, "lon": lay.lon})

    def _save(self, i: int, collector: SumsCollector) -> None:
        """Save date ``i``'s sums, then drop its scratch shards (they are no longer needed)."""
        sums = collector.dataset(self._coords(self.layout.init_times[i : i + 1]), self._units, self.seed)
        self.partial.mkdir(parents=True, exist_ok=True)
        target = self.partial / f"{_date_key(self.layout.init_times[i])}.zarr"
        tmp = staging(target)
        sums.to_zarr(tmp, mode="w", zarr_format=3, consolidated=False)  # small, read back once
        publish(tmp, target, marker="zarr.json", replace=True)
        self.saved.add(i)
        if self.scratch_layout is not None and not is_remote(self.store):
            for v in self.scratch_layout.channels:  # the date's shards: <array>/c/<init index>/...
                shutil.rmtree(Path(scratch_path(self.store)) / v / "c" / str(i), ignore_errors=True)

    def finish(self) -> dict:
        """Wait for the open dates, then publish the scores of every date (all must be saved)."""
        if self.complete:
            print(f"[{self.label}] {self.out}: scores up to date")
            return {"scores": str(self.out), "scoring_tasks": 0, "scored_variables": self.variables}
        self._harvest(wait=True)
        missing = sorted(set(range(len(self.layout.init_times))) - self.saved)
        if missing:
            raise RuntimeError(f"score: dates {missing} have no saved sums")  # run_units finished every unit
        parts = [
            xr.open_zarr(self.partial / f"{_date_key(t)}.zarr", consolidated=False).load()
            for t in self.layout.init_times
        ]
        sums = xr.concat(parts, dim="init_time", data_vars="minimal", coords="minimal", compat="override")
        sums.attrs = parts[0].attrs
        scores = finish_scores(sums, self.settings.regions, self.settings.weighting)
        scores.attrs.update(self.attrs)
        tmp = staging(self.out)
        scores.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
        publish(tmp, self.out, marker="zarr.json", replace=True)
        shutil.rmtree(self.partial, ignore_errors=True)
        if self.scratch_layout is not None and not is_remote(self.store):
            shutil.rmtree(scratch_path(self.store), ignore_errors=True)
        return {"scores": str(self.out), "scoring_tasks": self.tasks, "scored_variables": self.variables}


__all__ = ["OnlineScorer", "scratch_path"]
