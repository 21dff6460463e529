"""Stage ``hindcast``: HENS-style ensembles (checkpoints x perturbations) into one Zarr store.

The coordinator (``run``) checks everything first (``plan.HindcastPlan``), creates the store
once with all metadata (or reopens it when the same config made it), and hands the units not yet
marked done to Ray actors, one checkpoint per actor (``actor.SFNOUnitRunner``, scheduled by
``swarmcast.pipelines.ensemble.scheduler``). Store layout: ``swarmcast.ops.ensemble.store``;
perturbations: ``swarmcast.ops.perturbations``; the whole story: ARCHITECTURE.md, "Work units".
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import ClassVar, Literal

import zarr
from pydantic import Field, model_validator

from swarmcast.ops.checkpoint import CheckpointError, read_meta
from swarmcast.ops.ensemble.campaign import DateWindow
from swarmcast.ops.ensemble.done_flags import done_units
from swarmcast.ops.ensemble.lease import StoreLease
from swarmcast.ops.ensemble.summaries import merge_init
from swarmcast.ops.storage import Location, as_zarr
from swarmcast.pipelines.cluster.session import check_gpus, check_resources
from swarmcast.pipelines.config import StageConfig, Strict, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ensemble.output import open_ensemble_output
from swarmcast.pipelines.ensemble.settings import ActorSettings, CampaignSettings, InitTimes
from swarmcast.pipelines.plan_bounds import Footprint
from swarmcast.pipelines.stages.hindcast.plan import HindcastPlan


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
    ``swarmcast.ops.ensemble.summaries``), so huge ensembles can skip storing members."""

    variables: list[str] | None = None
    """Variables to summarise; None: every model channel."""
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    """Quantile levels in (0, 1), increasing."""
    thresholds: dict[str, list[float]] = Field(default_factory=dict)
    """Per variable, values (in its units) whose exceedance probability is stored."""


class HindcastConfig(StageConfig):
    """Parameters of the ``hindcast`` stage."""

    RESUMABLE: ClassVar[bool] = True
    RUN_SETTINGS: ClassVar[frozenset[str]] = frozenset({"actors", "campaign"})

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
        return [resolve_path(base, self.data), resolve_path(base, self.checkpoints)]

    def outputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.output)]

    def plan(self, base: Path) -> str:
        n_init = "the latest" if self.init_times == "latest" else self.n_init_times
        return (
            f"{n_init} init times x {self.members_per_checkpoint} members per checkpoint "
            f"({self.perturbation.kind}), {self.lead_hours:g} h leads; write {resolve_path(base, self.output)}"
        )

    def footprint(self, base: Path) -> Footprint:
        """Member records from the config; the store size too once the checkpoints exist."""
        folder = resolve_path(base, self.checkpoints)
        found = sorted(p for p in folder.iterdir() if (p / "checkpoint.json").exists()) if folder.is_dir() else []
        n_ck, n_init, n_mem = max(1, len(found)), self.n_init_times, self.members_per_checkpoint
        what = f"{n_init:,} init times x {max(1, len(found)):,} checkpoints x {n_mem:,} members"
        return Footprint(n_init * n_ck * n_mem, what, self._store_bytes(found, n_init * n_mem))

    @property
    def n_init_times(self) -> int:
        return 1 if self.init_times == "latest" else len(self.init_times.resolve())

    def _store_bytes(self, checkpoints: list[Location], members: int) -> int | None:
        """Uncompressed float32 members of the store (None when no checkpoint is readable yet)."""
        if not checkpoints:
            return None
        try:
            meta = read_meta(checkpoints[0], required=("model", "channels", "time_step_hours"))
            model, step = meta["model"], float(meta["time_step_hours"])
            channels = len(self.variables) if self.variables is not None else len(meta["channels"])
        except (CheckpointError, KeyError, TypeError, ValueError, OSError):
            return None  # the plan reports an unreadable checkpoint with its own message
        leads = int(self.lead_hours // step) // self.output_every + 1
        return len(checkpoints) * members * leads * channels * int(model["nlat"]) * int(model["nlon"]) * 4


def run(config: HindcastConfig, ctx: StageContext) -> dict:
    from swarmcast.pipelines.ensemble.scheduler import ActorPool, run_units  # imports Ray: only when running
    from swarmcast.pipelines.stages.hindcast.actor import SFNOUnitRunner

    plan = HindcastPlan(config, ctx)
    check_gpus(config.actors.use_gpu, "actors.use_gpu")
    check_resources(config.actors.resources, "actors.resources")
    out = resolve_path(ctx.base, config.output)
    hashes = plan.hashes  # verified against each checkpoint.json before the store records them
    fingerprint = ctx.fingerprint(config) | {"checkpoint_sha256": list(hashes.values())}
    with StoreLease(out, f"hindcast stage {config.label!r}") as lease, ActorPool(plan, out, SFNOUnitRunner) as pool:
        pending = open_ensemble_output(
            out,
            plan.layout,
            plan.seeds(),
            ctx,
            fingerprint,
            {"title": "swarmcast hindcast ensemble", "checkpoints": json.dumps(hashes)},
            extra=plan.summary_arrays if plan.summary_spec is not None else None,
            before_create=lambda: pool.start(list(plan.layout.units())),  # checkpoints load meanwhile
            run_settings=config.RUN_SETTINGS,
            lease=lease,
        )
        total = len(list(plan.layout.units()))
        merged = [_merge_summaries(plan, out)]  # dates a killed run finished but did not merge
        window = DateWindow(
            pending,
            order=config.campaign.order,
            max_dates=config.campaign.max_concurrent_dates,
            # a finished date is final at once: analysts can open its summaries mid-campaign
            on_date_done=lambda init: merged.append(_merge_summaries(plan, out, [init])),
        )
        report = run_units(plan, out, pending, label=config.label, runner=SFNOUnitRunner, window=window, pool=pool)
    return {
        "path": str(out),
        "units": total,
        "computed": len(pending),
        "redone": report.redone,
        "actors_started": report.actors_started,
        "model_loads": report.model_loads,
        "most_actors": report.most_actors,
        "summaries_merged": sum(merged),
        "dates_in_order": [str(plan.layout.init_times[i].astype("datetime64[h]")) for i in window.completed],
        "most_dates_at_once": window.most_open,
    }


def _merge_summaries(plan: HindcastPlan, store: Location, inits: list[int] | None = None) -> int:
    """Merge the partial summaries of each init time (all, or those of ``inits``) whose units are
    all done, once each. Reads only those dates' done flags: a 92-date campaign calls this once per
    finished date."""
    if plan.summary_spec is None:
        return 0
    lay = plan.layout
    rows = list(range(len(lay.init_times))) if inits is None else inits
    units_done = Counter(u.init for u in done_units(store, lay, inits=rows))
    flags = zarr.open_group(as_zarr(store), mode="r", use_consolidated=False)["summary_merged"][...]
    merged = 0
    for i in rows:
        if not flags[i] and units_done[i] == len(lay.checkpoints) * lay.blocks_per_checkpoint:
            merge_init(store, plan.summary_spec, i, lay.member_block)
            merged += 1
    return merged
