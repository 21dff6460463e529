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

import zarr

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
