"""Stage ``hindcast``: HENS-style ensembles (checkpoints x perturbations) into one Zarr store.

The coordinator (``run``) checks everything first (``plan.HindcastPlan``), creates the store
once with all metadata (or reopens it when the same config made it), and hands the units not yet
marked done to Ray actors, one checkpoint per actor (``actor.SFNOUnitRunner``, scheduled by
``swarmcast.pipelines.ensemble.scheduler``). With a ``score:`` section each finished date is
scored while later dates compute (``swarmcast.pipelines.scoring.online``). Store layout:
``swarmcast.ops.ensemble.store``; perturbations: ``swarmcast.ops.perturbations``; the whole
story: ARCHITECTURE.md, "Work units" and "Verification".
"""

from __future__ import annotations

import json
from collections import Counter
from typing import TYPE_CHECKING

import zarr

from swarmcast.ops import __version__
from swarmcast.ops.data.cf import portable_path
from swarmcast.ops.data.channels import channel_info
from swarmcast.ops.ensemble.campaign import DateWindow
from swarmcast.ops.ensemble.done_flags import done_units
from swarmcast.ops.ensemble.lease import StoreLease
from swarmcast.ops.ensemble.summaries import merge_init
from swarmcast.ops.storage import Location, as_zarr
from swarmcast.pipelines.cluster.session import check_gpus, check_resources
from swarmcast.pipelines.config import resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.ensemble.output import open_ensemble_output
from swarmcast.pipelines.stages.hindcast.config import HindcastConfig
from swarmcast.pipelines.stages.hindcast.plan import HindcastPlan

if TYPE_CHECKING:
    from swarmcast.pipelines.ensemble.scheduler import ActorPool
    from swarmcast.pipelines.scoring.online import OnlineScorer


def run(config: HindcastConfig, ctx: StageContext) -> dict:
    from swarmcast.pipelines.ensemble.scheduler import ActorPool, run_units  # imports Ray: only when running
    from swarmcast.pipelines.stages.hindcast.actor import SFNOUnitRunner

    plan = HindcastPlan(config, ctx)
    check_gpus(config.actors.use_gpu, "actors.use_gpu")
    check_resources(config.actors.resources, "actors.resources")
    out = resolve_path(ctx.base, config.output)
    hashes = plan.hashes  # verified against each checkpoint.json before the store records them
    fingerprint = ctx.fingerprint(config) | {"checkpoint_sha256": list(hashes.values())}
    scorer = _online_scorer(config, plan, ctx, out, fingerprint)  # its checks run before any actor
    gate = config.perturbation.kind != "control" and config.perturbation.growth_check
    with StoreLease(out, f"hindcast stage {config.label!r}") as lease, ActorPool(plan, out, SFNOUnitRunner) as pool:
        pending = open_ensemble_output(
            out,
            plan.layout,
            plan.seeds(),
            ctx,
            fingerprint,
            {"title": "swarmcast hindcast ensemble", "checkpoints": json.dumps(hashes)},
            extra=plan.summary_arrays if plan.summary_spec is not None else None,
            before_create=lambda: _gate_then_start(plan, pool, gate),
            run_settings=config.RUN_SETTINGS,
            lease=lease,
            grow=plan.cover,  # a campaign store grows by init times (ARCHITECTURE.md, "Growing campaigns")
        )
        total = len(list(plan.layout.units()))
        merged = [_merge_summaries(plan, out)]  # dates a killed run finished but did not merge
        if scorer is not None:
            scorer.start_scratch(fresh=len(pending) == total)
            for i in _finished_dates(plan, out):  # dates a killed run finished but did not score
                scorer.date_done(i)

        def date_done(init: int) -> None:
            merged.append(_merge_summaries(plan, out, [init]))
            if scorer is not None:
                scorer.date_done(init)

        window = DateWindow(
            pending,
            order=config.campaign.order,
            max_dates=config.campaign.max_concurrent_dates,
            # a finished date is final at once: analysts can open its summaries mid-campaign
            on_date_done=date_done,
        )
        report = run_units(plan, out, pending, label=config.label, runner=SFNOUnitRunner, window=window, pool=pool)
    # after the pool is gone: scoring tasks left waiting for CPUs the actors held run now
    scores = scorer.finish() if scorer is not None else {}
    return {
        **scores,
        "path": str(out),
        "units": total,
        "computed": len(pending),
        "redone": report.redone,
        "actors_started": report.actors_started,
        "model_loads": report.model_loads,
        "most_actors": report.most_actors,
        "first_unit_s": None if report.first_unit_s is None else round(report.first_unit_s, 3),
        "units_s": round(report.units_s, 3),
        "summaries_merged": sum(merged),
        "dates_in_order": [str(plan.layout.init_times[i].astype("datetime64[h]")) for i in window.completed],
        "most_dates_at_once": window.most_open,
    }


def _gate_then_start(plan: HindcastPlan, pool: ActorPool, gate: bool) -> None:
    """Before a new store is created (after the lease, so an --overwrite waits for a live run
    first): the perturbation-growth gate, whose refusal leaves any old store as it was, then the
    actors, which load their checkpoints while the store is created. A store being resumed was
    gated when it was made (its fingerprint holds the checkpoints and the perturbation)."""
    if gate:
        from swarmcast.pipelines.stages.hindcast.growth_gate import check_checkpoints

        check_checkpoints(plan)
    pool.start(list(plan.layout.units()))


def _online_scorer(
    config: HindcastConfig, plan: HindcastPlan, ctx: StageContext, out: Location, fingerprint: dict
) -> OnlineScorer | None:
    """The hindcast's online scorer (``score:``), its inputs checked; None without the section."""
    if config.score is None:
        return None
    from swarmcast.pipelines.scoring.online import OnlineScorer  # imports Ray: only when running

    s = config.score
    truth = resolve_path(ctx.base, s.truth if s.truth is not None else config.data)
    units = {c: (info.units if (info := channel_info(c)) is not None else None) for c in plan.score_variables}
    attrs = {
        "Conventions": "CF-1.10",
        "title": "swarmcast ensemble scores",
        "source": f"swarmcast {__version__}",
        "history": f"scored online by the hindcast stage of swarmcast {__version__}",
        "forecast": portable_path(config.output),
        "truth": portable_path(s.truth if s.truth is not None else config.data),
        "swarmcast_stage": json.dumps(fingerprint),
        "pipeline": json.dumps(ctx.pipeline_raw),
    }
    seed = plan.run_seed
    score_out = resolve_path(ctx.base, s.output)
    return OnlineScorer(
        s, plan.layout, out, truth, score_out, units, plan.scratch_layout, seed, config.label, attrs, ctx.overwrite
    )


def _finished_dates(plan: HindcastPlan, store: Location) -> list[int]:
    """Init indices whose units are all done."""
    lay = plan.layout
    units_done = Counter(u.init for u in done_units(store, lay))
    return [i for i in range(len(lay.init_times)) if units_done[i] == len(lay.checkpoints) * lay.blocks_per_checkpoint]


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
