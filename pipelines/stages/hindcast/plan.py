"""Everything a hindcast needs, checked before any work starts: the ``HindcastPlan``.

The coordinator builds the plan from the stage config and its inputs (checkpoints, data),
raising ``ConfigError`` with the key path for every impossible combination: checkpoints on
another grid or time step, a lead time that is not a whole number of model steps, an init time
without the history breeding needs, unknown variables or seed channels. The plan then carries
the store layout, member seeds and per-unit facts to the actors (``actor.SFNOUnitRunner``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from swarmcast.kernels.random_fields import auto_length_scale_m, check_length_scale
from swarmcast.ops.checkpoint import FORECAST_KEYS, CheckpointError, check_compatible, read_meta, verify_weights
from swarmcast.ops.data.channels import channel_info, physical_lower_bound
from swarmcast.ops.data.finite import bad_states
from swarmcast.ops.data.normalization import Normalization
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.data.splits import whole_steps
from swarmcast.ops.ensemble.chunking import auto_tiles, check_tiles
from swarmcast.ops.ensemble.rollout import saved_steps
from swarmcast.ops.ensemble.store import EnsembleLayout
from swarmcast.ops.ensemble.summaries import SummarySpec, create_summary_arrays
from swarmcast.ops.perturbations import Member, member_pattern, plan_members
from swarmcast.ops.perturbations.stochastic import StochasticTendencies
from swarmcast.ops.storage import Location
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ensemble.settings import ActorSettings

if TYPE_CHECKING:  # only for annotations: a plan is built from a checked config
    from swarmcast.pipelines.stages.hindcast.config import HindcastConfig, PerturbationSettings, SummarySettings


class HindcastPlan:
    """The checked hindcast: checkpoints, channels, steps, init times, layout and member seeds.

    Satisfies ``swarmcast.pipelines.ensemble.protocols.UnitPlan``.
    """

    def __init__(self, config: HindcastConfig, ctx: StageContext) -> None:
        self.config = config
        folder = resolve_path(ctx.base, config.checkpoints)
        paths = sorted(p for p in folder.iterdir() if (p / "checkpoint.json").exists()) if folder.is_dir() else []
        if not paths:
            raise ConfigError(f"checkpoints: no checkpoint folders (with checkpoint.json) in {folder}")
        self.checkpoint_paths: list[Location] = paths
        self.metas, self.hashes = self._verified(paths, config.perturbation.kind != "control")
        first = self.metas[0]
        self.channels = tuple(first["channels"])
        self.step_hours = float(first["time_step_hours"])
        self.store = resolve_path(ctx.base, config.data)
        ds = open_climate(self.store, self.channels)
        for p, m in zip(paths, self.metas, strict=True):
            try:
                check_compatible(m, self.channels, ds.sizes["lat"], ds.sizes["lon"])
            except CheckpointError as err:
                raise ConfigError(f"checkpoints: {p.name}: {err}") from None
            if float(m["time_step_hours"]) != self.step_hours:
                raise ConfigError(f"checkpoints: {p.name} steps {m['time_step_hours']} h, others {self.step_hours} h")
        n_steps = whole_steps(config.lead_hours, self.step_hours)
        if n_steps is None:
            raise ConfigError(
                f"lead_hours {config.lead_hours} is not a multiple of the model step ({self.step_hours} h)"
            )
        self.n_steps = n_steps
        self.keep = list(range(len(self.channels)))
        if config.variables is not None:
            missing = sorted(set(config.variables) - set(self.channels))
            if missing:
                raise ConfigError(f"variables: {missing} are not model channels {list(self.channels)}")
            self.keep = [self.channels.index(v) for v in config.variables]
        self.summary_spec = self._summary_spec(config.summaries)
        self.history_steps = config.perturbation.cycles if config.perturbation.kind == "bred-vector" else 0
        times = ds["time"].values.astype("datetime64[ns]")
        latest = config.init_times == "latest"
        self.inits = np.array([times.max()]) if latest else config.init_times.resolve()  # type: ignore[union-attr]
        self._data_times = times
        self._check_history(times, self.inits)
        self._check_states(ds)
        self.seed_mask = self._seed_channels(config.perturbation)
        self.layout = self._layout(ds)
        self.length_scale_m = self._length_scale(config.perturbation)
        sppt = config.perturbation.stochastic_tendencies
        self.tendencies = (
            None
            if sppt is None
            else StochasticTendencies(
                sppt.sigma,
                sppt.tau_hours / self.step_hours,
                self.length_scale_m
                if sppt.length_scale_km is None
                else self._checked_length("perturbation.stochastic_tendencies.length_scale_km", sppt.length_scale_km),
            )
        )
        self._check_amplitude(ds)
        self.score_variables, self.scratch_keep, self.scratch_layout = self._scored(config)
        self.run_seed = config.seed if config.seed is not None else ctx.seed
        self.ids = tuple(p.name for p in paths)

    @staticmethod
    def _verified(paths: list[Location], perturbed: bool) -> tuple[list[dict], dict[str, str]]:
        """(checkpoint.json of each, {name: weights sha256}) once every checkpoint is whole: its
        metadata complete, its weights matching their recorded hash, and (for perturbed members)
        a 48 h validation RMSE per channel to scale the perturbations by. Checked here, before the
        store records the hashes, so a damaged checkpoint never wedges a store; every bad
        checkpoint is named at once."""
        metas, hashes, problems = [], {}, []
        for p in paths:
            try:
                meta = read_meta(p, required=FORECAST_KEYS)
                hashes[p.name] = verify_weights(p, meta)
            except CheckpointError as err:
                problems.append(f"checkpoints: {err}")
                continue
            lead = f"{meta.get('validation_lead_hours', 48):g}h"
            rmse = (
                meta.get("validation_rmse", {}).get(lead, {}) if isinstance(meta.get("validation_rmse"), dict) else {}
            )
            lacking = [c for c in meta["channels"] if c not in rmse]
            if perturbed and lacking:
                problems.append(
                    f"checkpoints: {p / 'checkpoint.json'}: no {lead} validation RMSE for {lacking}, "
                    "which scales the perturbations (retrain, or use perturbation.kind: control)"
                )
            metas.append(meta)
        if problems:
            raise ConfigError(problems)
        return metas, hashes

    @property
    def actors(self) -> ActorSettings:
        return self.config.actors

    def _check_history(self, times: np.ndarray, inits: np.ndarray) -> None:
        step = np.timedelta64(round(self.step_hours * 3600), "s").astype("timedelta64[ns]")
        have = set(times.tolist())
        self.history_index: list[list[int]] = []
        for t0 in inits:
            needed = [t0 - k * step for k in range(self.history_steps, -1, -1)]
            absent = [str(t) for t in needed if t.astype("datetime64[ns]").astype(int) not in have]
            if absent:
                what = "the init time" if str(t0) in absent else "the breeding history"
                raise ConfigError(f"init_times: {t0} lacks {what} in {self.store} (missing {absent[:3]})")
            self.history_index.append([int(np.searchsorted(times, t)) for t in needed])

    def _check_states(self, ds: object, shown: int = 10) -> None:
        """Refuse unusable values in any state a member starts from (the init states and the
        breeding history), naming time, channel and count: NaN or infinite values, or values
        more than ``plausible_sigmas`` standard deviations from the mean of the data the
        checkpoints were trained on (the shallow-water data stays within 4). Either spreads to
        every member within a few steps."""
        index = [i for row in self.history_index for i in row]
        bad = bad_states(ds, index, bounds=self._plausible_bounds())  # type: ignore[arg-type]
        if bad:
            more = f" (and {len(bad) - shown} more)" if len(bad) > shown else ""
            raise ConfigError(
                f"init_times: {self.store} has unusable values in states members start from: "
                + "; ".join(str(b) for b in bad[:shown])
                + more
                + ". Fix the data, or leave those init times out"
            )

    def _plausible_bounds(self) -> dict[str, tuple[float, float]]:
        """Per channel, mean -/+ ``plausible_sigmas`` std of the checkpoints' training data (the
        widest over checkpoints); none when the setting is None."""
        bounds: dict[str, tuple[float, float]] = {}
        sigmas = self.config.plausible_sigmas
        if sigmas is None:
            return bounds
        for meta in self.metas:
            mean, std = Normalization.from_attr(meta["normalization"]).arrays(self.channels)
            for c, m, s in zip(self.channels, mean.tolist(), std.tolist(), strict=True):
                lo, hi = m - sigmas * s, m + sigmas * s
                old = bounds.get(c, (lo, hi))
                bounds[c] = (min(lo, old[0]), max(hi, old[1]))
        return bounds

    def _summary_spec(self, s: SummarySettings | None) -> SummarySpec | None:
        if s is None:
            return None
        names = s.variables if s.variables is not None else list(self.channels)
        unknown = sorted(set(names) - set(self.channels))
        if unknown:
            raise ConfigError(f"summaries.variables: {unknown} are not model channels {list(self.channels)}")
        try:
            return SummarySpec(tuple(names), tuple(s.quantiles), {k: list(v) for k, v in s.thresholds.items()})
        except ValueError as err:
            raise ConfigError(f"summaries: {err}") from None

    def summary_arrays(self, path: Path) -> None:
        """Create the summary arrays in a store being built (``create_ensemble_store``'s ``extra``)."""
        lay = self.layout
        n_units = len(lay.checkpoints) * lay.blocks_per_checkpoint
        shape = (len(lay.init_times), n_units, len(lay.lead_times), len(lay.lat), len(lay.lon))
        units = {c: info.units for c in self.channels if (info := channel_info(c)) is not None}
        assert self.summary_spec is not None
        create_summary_arrays(path, self.summary_spec, shape, units)

    def _scored(self, config: HindcastConfig) -> tuple[list[str], list[int], EnsembleLayout | None]:
        """(channels scored online, model indices of those not stored, the scratch store's layout
        for them or None): ``swarmcast.pipelines.scoring.online``."""
        if config.score is None:
            return [], [], None
        names = config.score.variables if config.score.variables is not None else list(self.channels)
        unknown = sorted(set(names) - set(self.channels))
        if unknown or not names:
            raise ConfigError(f"score.variables: {unknown or names} are not model channels {list(self.channels)}")
        scratch = [v for v in names if v not in self.layout.channels]
        if not scratch:
            return names, [], None
        return names, [self.channels.index(v) for v in scratch], replace(self.layout, channels=tuple(scratch))

    def _seed_channels(self, p: PerturbationSettings) -> list[bool]:
        names = p.seed_channels or [self.channels[0]]
        unknown = sorted(set(names) - set(self.channels))
        bad_nonneg = sorted(set(p.nonnegative) - set(self.channels))
        if unknown or bad_nonneg:
            raise ConfigError(
                f"perturbation: channels {unknown or bad_nonneg} are not model channels {list(self.channels)}"
            )
        return [c in names for c in self.channels]

    def _check_amplitude(self, ds: object, sigmas: float = 4.0) -> None:
        """Refuse perturbations that would take a member of a bounded channel (a layer depth, a
        temperature in K; ``physical_lower_bound``) below its bound: ``sigmas`` times the target
        amplitude (``amplitude_factor`` x the largest 48 h RMSE over checkpoints) below the
        smallest initial value. Channels clipped by ``perturbation.nonnegative`` are exempt."""
        p = self.config.perturbation
        if p.kind == "control":
            return
        last = [row[-1] for row in self.history_index]
        for c in self.channels:
            bound = physical_lower_bound(c)
            if bound is None or c in p.nonnegative:
                continue
            rmse = max(float(m["validation_rmse"][f"{m.get('validation_lead_hours', 48):g}h"][c]) for m in self.metas)
            amplitude = p.amplitude_factor * rmse
            lowest = float(ds[c].isel(time=last).min())  # type: ignore[index]
            if lowest - sigmas * amplitude < bound:
                raise ConfigError(
                    f"perturbation.amplitude_factor: {p.amplitude_factor:g} x the 48 h RMSE of {c} ({rmse:.4g}) "
                    f"gives perturbations of {amplitude:.4g} RMS; at {sigmas:g} sigma they take {c} below "
                    f"{bound:g} (its smallest initial value is {lowest:.4g}). Lower amplitude_factor to at most "
                    f"{(lowest - bound) / (sigmas * rmse):.3g}, or list {c} in perturbation.nonnegative to clip it"
                )

    def _length_scale(self, p: PerturbationSettings) -> float:
        """The seed noise's correlation length (m) on the data's grid, refused below two spacings."""
        if p.length_scale_km == "auto":
            return auto_length_scale_m(len(self.layout.lat), len(self.layout.lon))
        if p.kind in ("correlated", "bred-vector"):
            return self._checked_length("perturbation.length_scale_km", p.length_scale_km)
        return p.length_scale_km * 1e3

    def _checked_length(self, key: str, km: float) -> float:
        """``km`` in metres, refused (naming ``key``) below two spacings of the data's grid."""
        try:
            check_length_scale(km * 1e3, len(self.layout.lat), len(self.layout.lon))
        except ValueError as err:
            raise ConfigError(f"{key}: {err}") from None
        return km * 1e3

    def _layout(self, ds: object) -> EnsembleLayout:
        c = self.config
        pattern = member_pattern(c.perturbation.pairs, control=c.perturbation.control)
        leads = np.array(saved_steps(self.n_steps, c.output_every)) * np.timedelta64(round(self.step_hours * 3600), "s")
        block = c.member_block or len(pattern)
        lat, lon = ds["lat"].values, ds["lon"].values  # type: ignore[index]
        tiles = auto_tiles(len(lat), len(lon)) if c.tiles == "auto" else tuple(c.tiles)
        try:
            check_tiles(tiles, len(lat), len(lon))  # type: ignore[arg-type]
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return EnsembleLayout(
            init_times=self.inits,
            lead_times=leads.astype("timedelta64[ns]"),
            lat=lat,
            lon=lon,
            channels=tuple(self.channels[i] for i in self.keep),
            checkpoints=tuple(p.name for p in self.checkpoint_paths),
            perturbation=np.array([index for index, _ in pattern]),
            sign=np.array([sign for _, sign in pattern]),
            member_block=block,
            leads_per_shard=min(c.leads_per_shard or len(leads), len(leads)),
            tiles=tiles,  # type: ignore[arg-type]
        )

    def cover(self, init_times: np.ndarray) -> tuple[EnsembleLayout, np.ndarray]:
        """Re-plan for every init time of a campaign store this run grows (``init_times``,
        datetime64[ns], the store's followed by the new ones): (layout, seeds). The new ones
        were checked with the plan; every one needs its history in the data again, since an
        unfinished unit of any date may run."""
        init_times = np.asarray(init_times, dtype="datetime64[ns]")
        if self.config.score is not None and not np.array_equal(init_times, self.inits):
            raise ConfigError(
                f"score: this store holds {len(init_times)} init times and the run asks for {len(self.inits)}; "
                "online scores cover one campaign's dates and cannot grow with it. Score a growing store "
                "with a score stage after the hindcast instead"
            )
        self.inits = init_times
        self._check_history(self._data_times, init_times)
        self.layout = replace(self.layout, init_times=init_times)
        return self.layout, self.seeds()

    def seeds(self) -> np.ndarray:
        """Member seeds (n_init, n_members), from (run seed, init time, checkpoint, index)."""
        out = []
        for t0 in self.layout.init_times:
            row = []
            for ck in self.ids:
                row += [m.seed for m in self.members(t0, ck)]
            out.append(row)
        return np.array(out, dtype=np.int64)

    def members(self, t0: np.datetime64, checkpoint_id: str) -> list[Member]:
        """Every member of one checkpoint at one init time, in store order."""
        p = self.config.perturbation
        return plan_members(self.run_seed, t0, checkpoint_id, p.pairs, control=p.control)


__all__ = ["HindcastPlan"]
