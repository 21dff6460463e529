"""Stage ``hindcast``: HENS-style ensembles (checkpoints x perturbations) into one Zarr store.

The coordinator (this module) checks everything first, creates the store once with all
metadata (or reopens it when the same config made it), and hands the units not yet marked
done to Ray actors, one checkpoint per actor (``swarmcast.pipelines.hindcast_actors``).
Store layout: ``swarmcast.ops.ensemble_store``; perturbations: ``swarmcast.ops.perturbations``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import zarr
from pydantic import Field, model_validator

from swarmcast.ops import __version__
from swarmcast.ops.channels import channel_info
from swarmcast.ops.checkpoint import CheckpointError, check_compatible, read_meta, weights_hash
from swarmcast.ops.ensemble_store import (
    EnsembleLayout,
    Unit,
    create_ensemble_store,
    done_units,
    store_fingerprint,
)
from swarmcast.ops.ensemble_summaries import SummarySpec, create_summary_arrays, merge_init
from swarmcast.ops.perturbations import member_pattern, plan_members
from swarmcast.ops.readers import open_climate
from swarmcast.ops.rollout import saved_steps
from swarmcast.ops.storage import Location, as_zarr, output_exists
from swarmcast.pipelines.campaign import DateWindow
from swarmcast.pipelines.config import ConfigError, StageConfig, Strict, resolve_path
from swarmcast.pipelines.context import StageContext


class InitTimes(Strict):
    """Initial times: an explicit list, or a range ``start``..``end`` every ``every_hours``."""

    times: list[str] | None = None
    """Explicit ISO times."""
    start: str | None = None
    """First init time of a range."""
    end: str | None = None
    """Last init time of a range (inclusive)."""
    every_hours: float = Field(24.0, gt=0)
    """Spacing of a range."""

    @model_validator(mode="after")
    def _one_form(self) -> InitTimes:
        if (self.times is None) == (self.start is None):
            raise ValueError("give either 'times' or 'start' (with 'end')")
        if self.start is not None and self.end is None:
            raise ValueError("a range needs 'end'")
        return self

    def resolve(self) -> np.ndarray:
        if self.times is not None:
            return np.array(sorted(np.datetime64(t, "ns") for t in self.times))
        start, end = np.datetime64(self.start, "ns"), np.datetime64(self.end, "ns")
        step = np.timedelta64(round(self.every_hours * 3600), "s").astype("timedelta64[ns]")
        if end < start:
            raise ValueError(f"init_times.end {end} is before start {start}")
        return np.arange(start, end + step, step)


class PerturbationSettings(Strict):
    """How members differ (HENS: bred vectors, 0.35 x 48 h RMSE, seeded on z500)."""

    kind: Literal["bred-vector", "correlated", "gaussian", "control"] = "bred-vector"
    """Perturbation family."""
    pairs: int = Field(2, ge=0)
    """+/- member pairs per checkpoint and init time."""
    control: bool = True
    """Add the unperturbed control member (member 0 of each checkpoint)."""
    amplitude_factor: float = Field(0.35, gt=0)
    """Amplitude as a fraction of each checkpoint's 48 h validation RMSE per channel."""
    seed_channels: list[str] | None = None
    """Channels carrying the initial bred-vector noise; None: the first channel."""
    cycles: int = Field(3, ge=1)
    """Breeding cycles (model steps before the init time)."""
    length_scale_km: float = Field(500.0, gt=0)
    """Correlation length of the noise."""
    nonnegative: list[str] = Field(default_factory=list)
    """Channels clipped at zero after perturbing (e.g. humidity)."""


class SummarySettings(Strict):
    """Online summaries kept per variable (merged exactly across work units; see
    ``swarmcast.ops.ensemble_summaries``), so huge ensembles can skip storing members."""

    variables: list[str] | None = None
    """Variables to summarise; None: every model channel."""
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    """Quantile levels in (0, 1), increasing."""
    thresholds: dict[str, list[float]] = Field(default_factory=dict)
    """Per variable, values (in its units) whose exceedance probability is stored."""


class ActorSettings(Strict):
    """Resources of the actors that run units (one checkpoint each)."""

    cpus: float = Field(1.0, gt=0)
    """CPUs per actor."""
    use_gpu: bool = False
    """Run on GPUs."""
    per_gpu: int = Field(1, ge=1)
    """Actors sharing one GPU (fractional GPUs)."""
    max_actors: int | None = Field(None, ge=1)
    """Actors at once; None: as many as the cluster's CPUs/GPUs allow."""
    max_unit_retries: int = Field(3, ge=0)
    """Times a unit is redone after its actor died before giving up."""


class CampaignSettings(Strict):
    """How many init dates run at once, and in which order (HENS: a job array, two dates at a time)."""

    max_concurrent_dates: int | None = Field(None, ge=1)
    """Dates in flight at once; None: all. When a date finishes (and is merged) the next one starts."""
    order: Literal["oldest-first", "newest-first"] = "oldest-first"
    """Priority of the dates."""


class HindcastConfig(StageConfig):
    """Parameters of the ``hindcast`` stage."""

    RESUMABLE: ClassVar[bool] = True

    kind: Literal["hindcast"] = "hindcast"
    """Stage kind."""
    data: str = "data.zarr"
    """Climate store with the initial states (and the history breeding needs)."""
    checkpoints: str = "checkpoints"
    """Folder of checkpoint folders (every subfolder with a checkpoint.json is used)."""
    output: str = "hindcast.zarr"
    """Ensemble store to write."""
    init_times: InitTimes | Literal["latest"]
    """Initial times, or "latest": the newest time of the data store (for scheduled runs)."""
    lead_hours: float = Field(48.0, gt=0)
    """Forecast length."""
    output_every: int = Field(1, ge=1)
    """Store every k-th model step."""
    variables: list[str] | None = None
    """Channels whose members are stored; None: all model channels; []: none (summaries only)."""
    summaries: SummarySettings | None = None
    """Online summaries (mean, variance, quantiles, exceedance) to store; None: none."""
    perturbation: PerturbationSettings = PerturbationSettings()
    """Member perturbations."""
    member_block: int | None = Field(None, ge=1)
    """Members per work unit; None: all members of a checkpoint (must divide them)."""
    leads_per_shard: int | None = Field(None, ge=1)
    """Saved leads per shard; None: all (one shard per unit and variable)."""
    actors: ActorSettings = ActorSettings()
    """Actor resources."""
    campaign: CampaignSettings = CampaignSettings()
    """Date concurrency and priority."""
    seed: int | None = None
    """Run seed for member seeds; None: the pipeline seed."""

    @model_validator(mode="after")
    def _members(self) -> HindcastConfig:
        p = self.perturbation
        if p.kind == "control" and p.pairs:
            raise ValueError("perturbation.kind 'control' makes no pairs; set pairs: 0")
        if not p.control and p.pairs == 0:
            raise ValueError("no members: enable perturbation.control or set pairs >= 1")
        n = int(p.control) + 2 * p.pairs
        if self.member_block is not None and n % self.member_block:
            raise ValueError(f"member_block {self.member_block} must divide the {n} members per checkpoint")
        if self.variables == [] and self.summaries is None:
            raise ValueError("nothing to store: 'variables' is empty and no 'summaries' are configured")
        if self.init_times != "latest":
            self.init_times.resolve()
        return self

    @property
    def members_per_checkpoint(self) -> int:
        return int(self.perturbation.control) + 2 * self.perturbation.pairs

    def inputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.data)]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        n_init = "the latest" if self.init_times == "latest" else len(self.init_times.resolve())
        return (
            f"{n_init} init times x {self.members_per_checkpoint} members per checkpoint "
            f"({self.perturbation.kind}), {self.lead_hours:g} h leads; write {resolve_path(base, self.output)}"
        )


class Prepared:
    """Everything the hindcast needs, checked before any work starts."""

    def __init__(self, config: HindcastConfig, ctx: StageContext) -> None:
        self.config = config
        folder = resolve_path(ctx.base, config.checkpoints)
        paths = sorted(p for p in folder.iterdir() if (p / "checkpoint.json").exists()) if folder.is_dir() else []
        if not paths:
            raise ConfigError(f"checkpoints: no checkpoint folders (with checkpoint.json) in {folder}")
        self.checkpoint_paths = paths
        try:
            self.metas = [read_meta(p) for p in paths]
        except CheckpointError as err:
            raise ConfigError(f"checkpoints: {err}") from None
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
        n_steps = config.lead_hours / self.step_hours
        if abs(n_steps - round(n_steps)) > 1e-9:
            raise ConfigError(
                f"lead_hours {config.lead_hours} is not a multiple of the model step ({self.step_hours} h)"
            )
        self.n_steps = round(n_steps)
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
        self._check_history(times, self.inits)
        self.seed_mask = self._seed_channels(config.perturbation)
        self.layout = self._layout(ds)
        self.run_seed = config.seed if config.seed is not None else ctx.seed
        self.ids = tuple(p.name for p in paths)

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

    def _seed_channels(self, p: PerturbationSettings) -> list[bool]:
        names = p.seed_channels or [self.channels[0]]
        unknown = sorted(set(names) - set(self.channels))
        bad_nonneg = sorted(set(p.nonnegative) - set(self.channels))
        if unknown or bad_nonneg:
            raise ConfigError(
                f"perturbation: channels {unknown or bad_nonneg} are not model channels {list(self.channels)}"
            )
        return [c in names for c in self.channels]

    def _layout(self, ds: object) -> EnsembleLayout:
        c = self.config
        pattern = member_pattern(c.perturbation.pairs, control=c.perturbation.control)
        leads = np.array(saved_steps(self.n_steps, c.output_every)) * np.timedelta64(round(self.step_hours * 3600), "s")
        block = c.member_block or len(pattern)
        return EnsembleLayout(
            init_times=self.inits,
            lead_times=leads.astype("timedelta64[ns]"),
            lat=ds["lat"].values,
            lon=ds["lon"].values,  # type: ignore[index]
            channels=tuple(self.channels[i] for i in self.keep),
            checkpoints=tuple(p.name for p in self.checkpoint_paths),
            perturbation=np.array([index for index, _ in pattern]),
            sign=np.array([sign for _, sign in pattern]),
            member_block=block,
            leads_per_shard=min(c.leads_per_shard or len(leads), len(leads)),
        )

    def seeds(self) -> np.ndarray:
        """Member seeds (n_init, n_members), from (run seed, init time, checkpoint, index)."""
        out = []
        for t0 in self.layout.init_times:
            row = []
            for ck in self.ids:
                row += [m.seed for m in self.members(t0, ck)]
            out.append(row)
        return np.array(out, dtype=np.int64)

    def members(self, t0: np.datetime64, checkpoint_id: str) -> list:
        p = self.config.perturbation
        return plan_members(self.run_seed, t0, checkpoint_id, p.pairs, control=p.control)


def run(config: HindcastConfig, ctx: StageContext) -> dict:
    from swarmcast.pipelines.hindcast_actors import run_units

    prep = Prepared(config, ctx)
    out = resolve_path(ctx.base, config.output)
    hashes = {p.name: weights_hash(p) for p in prep.checkpoint_paths}
    fingerprint = ctx.fingerprint(config) | {"checkpoint_sha256": list(hashes.values())}
    pending = open_ensemble_output(
        out,
        prep.layout,
        prep.seeds(),
        ctx,
        fingerprint,
        {"title": "swarmcast hindcast ensemble", "checkpoints": json.dumps(hashes)},
        extra=prep.summary_arrays if prep.summary_spec is not None else None,
    )
    total = len(list(prep.layout.units()))
    merged = [_merge_summaries(prep, out)]  # dates a killed run finished but did not merge
    window = DateWindow(
        pending,
        order=config.campaign.order,
        max_dates=config.campaign.max_concurrent_dates,
        # a finished date is final at once: analysts can open its summaries mid-campaign
        on_date_done=lambda _: merged.append(_merge_summaries(prep, out)),
    )
    run_units(prep, out, pending, label=config.label, window=window)
    return {
        "path": str(out),
        "units": total,
        "computed": len(pending),
        "summaries_merged": sum(merged),
        "dates_in_order": [str(prep.layout.init_times[i].astype("datetime64[h]")) for i in window.completed],
        "most_dates_at_once": window.most_open,
    }


def open_ensemble_output(
    out: Location,
    layout: EnsembleLayout,
    seeds: np.ndarray,
    ctx: StageContext,
    fingerprint: dict,
    attrs: dict,
    *,
    extra: Callable[[Path], None] | None = None,
) -> list[Unit]:
    """Create an ensemble store (or reopen the one the same config made); its units still to do.

    Shared by every stage that fills the design-§5 store (``hindcast``, ``sample-diffusion``):
    a store made by another config is refused unless ``--overwrite``.
    """
    fingerprint = json.loads(json.dumps(fingerprint))
    if output_exists(out) and not ctx.overwrite:
        if store_fingerprint(out) != fingerprint:
            kind = fingerprint.get("kind", "stage")
            raise ConfigError(f"{out} was made by a different {kind} config or checkpoints; pass --overwrite")
    else:
        full = {
            "Conventions": "CF-1.10",
            "title": attrs.get("title", "swarmcast ensemble"),
            "source": f"swarmcast {__version__}",
            "swarmcast_stage": fingerprint,
            "pipeline": json.dumps(ctx.pipeline_raw),
            **{k: v for k, v in attrs.items() if k != "title"},
        }
        create_ensemble_store(out, layout, seeds, full, overwrite=ctx.overwrite, extra=extra)
    return sorted(set(layout.units()) - done_units(out, layout))


def _merge_summaries(prep: Prepared, store: Location) -> int:
    """Merge the partial summaries of every init time whose units are all done (once each)."""
    if prep.summary_spec is None:
        return 0
    done = {(u.init, u.checkpoint, u.block) for u in done_units(store, prep.layout)}
    flags = zarr.open_group(as_zarr(store), mode="r", use_consolidated=False)["summary_merged"][...]
    lay, merged = prep.layout, 0
    for i in range(len(lay.init_times)):
        units = [u for u in lay.units() if u.init == i]
        if not flags[i] and all((u.init, u.checkpoint, u.block) in done for u in units):
            merge_init(store, prep.summary_spec, i, lay.member_block)
            merged += 1
    return merged
