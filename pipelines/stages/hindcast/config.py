"""The ``hindcast`` stage's settings, as the pipeline file gives them: checked and sized without
importing torch or Ray, so a plan is refused or printed in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from swarmcast.ops.checkpoint import CheckpointError, read_meta
from swarmcast.ops.storage import Location
from swarmcast.pipelines.config import StageConfig, Strict, resolve_path
from swarmcast.pipelines.ensemble.settings import ActorSettings, CampaignSettings, InitTimes
from swarmcast.pipelines.plan_bounds import Footprint
from swarmcast.pipelines.scoring.settings import OnlineScoreSettings


class StochasticTendencySettings(Strict):
    """SPPT-style model-error noise on every forecast step (``swarmcast.ops.perturbations.stochastic``)."""

    sigma: float = Field(0.3, ge=0, le=1)
    """Std of the multiplicative noise r on each step's increment (1 + r is kept in [0, 2])."""
    tau_hours: float = Field(24.0, gt=0)
    """E-folding time of r (first-order autoregressive in time)."""
    length_scale_km: float | None = Field(None, gt=0)
    """Correlation length of r, in km (at least two grid spacings); None: the perturbation's
    ``length_scale_km``. Model error lives where the model's error is: on the demo, at the
    planetary scales (ARCHITECTURE.md, "Calibrated ensembles")."""


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
    length_scale_km: float | Literal["auto"] = "auto"
    """Correlation length of the seed noise (correlated and bred-vector kinds), in km; at least
    two grid spacings. "auto": HENS's 500 km, or three grid spacings on grids too coarse for it
    (``swarmcast.kernels.random_fields``)."""
    nonnegative: list[str] = Field(default_factory=list)
    """Channels clipped at zero after perturbing (e.g. humidity)."""
    stochastic_tendencies: StochasticTendencySettings | None = None
    """Model-error noise on the perturbed members' steps (the control stays deterministic);
    None: none. Its correlation length is ``length_scale_km``."""
    growth_check: bool = True
    """Before the store is created, roll each checkpoint's perturbed members of the first init
    dates forward and refuse a checkpoint whose perturbations explode
    (``swarmcast.ops.perturbations.growth``)."""


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
    RUN_SETTINGS: ClassVar[frozenset[str]] = frozenset({"actors", "campaign", "plausible_sigmas", "tiles"})

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
    score: OnlineScoreSettings | None = None
    """Scores computed while the campaign runs, date by date; None: none (use a ``score`` stage)."""
    perturbation: PerturbationSettings = PerturbationSettings()
    """Member perturbations."""
    member_block: int | None = Field(None, ge=1)
    """Members per work unit; None: all members of a checkpoint (must divide them)."""
    leads_per_shard: int | None = Field(None, ge=1)
    """Saved leads per shard; None: all (one shard per unit and variable)."""
    tiles: Literal["auto"] | tuple[PositiveInt, PositiveInt] = "auto"
    """(lat, lon) tiles of each stored field, so a point read fetches 1/(lat x lon tiles) of a
    variable; "auto": 4 x 4 where the grid allows; [1, 1]: one map per inner chunk."""
    actors: ActorSettings = ActorSettings()
    """Actor resources."""
    campaign: CampaignSettings = CampaignSettings()
    """Date concurrency and priority."""
    seed: int | None = None
    """Run seed for member seeds; None: the pipeline seed."""
    plausible_sigmas: float | None = Field(50.0, gt=0)
    """Initial values further than this many standard deviations (of the checkpoints' training
    data) from its mean are refused as broken (a fill value, a unit slip); None: no range check.
    Raise it for heavy-tailed channels such as precipitation."""

    @model_validator(mode="after")
    def _members(self) -> HindcastConfig:
        p = self.perturbation
        if isinstance(p.length_scale_km, float) and p.length_scale_km <= 0:
            raise ValueError(f"perturbation.length_scale_km must be > 0 or 'auto', got {p.length_scale_km}")
        if p.kind == "control" and p.pairs:
            raise ValueError("perturbation.kind 'control' makes no pairs; set pairs: 0")
        if not p.control and p.pairs == 0:
            raise ValueError("no members: enable perturbation.control or set pairs >= 1")
        n = int(p.control) + 2 * p.pairs
        if self.member_block is not None and n % self.member_block:
            raise ValueError(f"member_block {self.member_block} must divide the {n} members per checkpoint")
        if self.variables == [] and self.summaries is None and self.score is None:
            raise ValueError("nothing to store: 'variables' is empty and no 'summaries' or 'score' are configured")
        if self.init_times != "latest":
            self.init_times.resolve()
        return self

    @property
    def members_per_checkpoint(self) -> int:
        return int(self.perturbation.control) + 2 * self.perturbation.pairs

    def inputs(self, base: Path) -> list[Path]:
        return [resolve_path(base, self.data), resolve_path(base, self.checkpoints)]

    def outputs(self, base: Path) -> list[Path]:
        scores = [resolve_path(base, self.score.output)] if self.score is not None else []
        return [resolve_path(base, self.output), *scores]

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
