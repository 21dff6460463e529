"""Stage ``score``: an ensemble store against a truth store -> a scores Zarr store.

The coordinator checks both stores, splits the work into tasks that fit ``memory_budget_mb``
(``swarmcast.ops.verification.blocks``) and runs them as Ray tasks across the cluster
(``swarmcast.pipelines.scoring.fanout``); their per-latitude-row sums are finished into the
scores (``swarmcast.ops.verification.finish``) and both are written in a staging folder that
is published when complete (``swarmcast.ops.storage``), so an interrupted run never leaves a
half-written scores store. With ``from_sums`` the sums of an existing scores store are
finished for other regions or another weighting instead (ARCHITECTURE.md, "Verification").
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from swarmcast.ops import __version__
from swarmcast.ops.data.cf import portable_path
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.ensemble.verify import check_store
from swarmcast.ops.errors import InputError
from swarmcast.ops.progress import Progress
from swarmcast.ops.storage import open_zarr_dataset, publish, staging
from swarmcast.ops.verification import align_truth, open_ensemble
from swarmcast.ops.verification.blocks import MemoryBudgetError, ScoringSpec, SumsCollector, TaskSums, plan_tasks
from swarmcast.ops.verification.finish import finish_scores
from swarmcast.ops.verification.partial_sums import MemberGroups
from swarmcast.ops.verification.scoring import check_request, lead_spans
from swarmcast.ops.verification.sums_store import MismatchedSumsError, sums_of
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.scoring.fanout import ScoringInputs, run_tasks
from swarmcast.pipelines.scoring.truth import check_units, check_valid_times, climatology, nonfinite_blocks
from swarmcast.pipelines.stages.score.config import ScoreConfig


def _open_inputs(
    config: ScoreConfig, ctx: StageContext
) -> tuple[xr.Dataset, xr.Dataset, list[str], dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Open and check both stores: the ensemble, the truth aligned to it, the variables to score
    the blocks to skip (``_nonfinite_truth``) and the climatology; every problem is a ConfigError naming the key."""
    fpath, tpath = resolve_path(ctx.base, config.forecast), resolve_path(ctx.base, config.truth)
    try:
        ens = open_ensemble(fpath)
    except InputError as err:  # not an ensemble store, unfinished init times, no such path
        raise ConfigError(f"forecast: {err}") from None
    try:
        truth = open_climate(tpath)
    except InputError as err:  # no such store, a layout we cannot read, missing channels
        raise ConfigError(f"truth: {err}") from None
    check = check_store(fpath)
    if check.damage:  # zarr would read a lost shard as NaN, a truncated one as a checksum error
        raise ConfigError(
            "\n".join(
                [f"forecast: {len(check.damage)} finished units of {fpath} lost shards since they were written"]
                + [f"forecast: {line}" for line in check.lines()]
                + ["forecast: rerun the stage that wrote it; it computes exactly these units again"]
            )
        )
    fc_vars = [str(v) for v, a in ens.data_vars.items() if "member" in a.dims and a.ndim == 5]
    if config.variables is None:
        variables = [v for v in fc_vars if v in truth]
        if not variables:
            raise ConfigError(f"variables: the forecast's {fc_vars} and the truth's {list(truth.data_vars)} share none")
    else:
        variables = list(config.variables)
        absent = [v for v in variables if v not in fc_vars or v not in truth]
        if absent:
            raise ConfigError(f"variables: {absent} are not in both the forecast {fc_vars} and the truth")
    check_units({v: ens[v].attrs.get("units") for v in variables}, truth, "variables")
    m = ens.sizes["member"]
    if m < 2:
        raise ConfigError(f"forecast: scoring needs an ensemble of at least 2 members, the store has {m}")
    if config.ensemble_sizes and not all(1 <= k <= m for k in config.ensemble_sizes):
        raise ConfigError(f"ensemble_sizes: {config.ensemble_sizes} must lie in 1..{m} (members in the forecast)")
    valid = ens["valid_time"].values
    check_valid_times(truth, valid, "truth")
    try:
        aligned = align_truth(ens, truth[variables])
    except ValueError as err:  # another grid
        raise ConfigError(f"truth: {err}") from None
    skip = nonfinite_blocks(truth, valid, variables, config.nonfinite_truth, config.label)
    return ens, aligned, variables, skip, climatology(truth, variables)


def _name_unreadable_shards(forecast: Path, err: Exception) -> None:
    """After a read failed while scoring: a ConfigError naming the forecast's shards that cannot
    be decoded (damaged in place at their written size, which the size check before scoring does
    not see); nothing when every shard reads (then ``err`` was not the store's fault)."""
    check = check_store(forecast, deep=True)
    if check.damage:
        raise ConfigError(
            "\n".join(
                [f"forecast: {len(check.damage)} finished units of {forecast} cannot be read back"]
                + [f"forecast: {line}" for line in check.lines()]
                + [f"forecast: run `swarmcast verify --deep --unmark {forecast}`, then rerun the stage that wrote it"]
            )
        ) from err


def _scored_sums(config: ScoreConfig, ctx: StageContext) -> tuple[xr.Dataset, dict]:
    """Score the forecast on Ray: the sums dataset and the stage summary's fields."""
    ens, _, variables, skip, climatology = _open_inputs(config, ctx)
    fpath, tpath = resolve_path(ctx.base, config.forecast), resolve_path(ctx.base, config.truth)
    stored = open_zarr_dataset(fpath).sizes["init_time"]
    if stored > ens.sizes["init_time"]:
        left = stored - ens.sizes["init_time"]
        print(f"[{config.label}] scoring the {ens.sizes['init_time']} finished init times; {left} unfinished left out")
    m, seed = ens.sizes["member"], config.seed if config.seed is not None else ctx.seed
    sizes = check_request(m, config.regions, config.ensemble_sizes)
    groups = MemberGroups.build([str(c) for c in ens["checkpoint"].values], sizes, config.bootstrap, seed)
    budget = int(config.memory_budget_mb * 2**20)
    nlat, nlon, n_init = ens.sizes["lat"], ens.sizes["lon"], ens.sizes["init_time"]
    try:
        spans = lead_spans(ens, variables[0])
        tasks, batch = plan_tasks(variables, n_init, spans, m, nlat, nlon, budget, config.spectra)
    except MemoryBudgetError as err:
        raise ConfigError(str(err)) from None
    collector = SumsCollector(variables, n_init, ens.sizes["lead_time"], nlat, groups)
    inputs = ScoringInputs(
        fpath, tpath, tuple(variables), tuple(ens["init_time"].values), {v: skip[v] for v in variables}, climatology
    )
    peak = [0]

    bar = Progress(f"{config.label}: scoring", len(tasks), "tasks")

    def place(result: TaskSums) -> None:
        collector.add(result)
        peak[0] = max(peak[0], result.peak_rss_bytes)
        bar.update(1)

    try:
        with bar:
            run_tasks(
                inputs,
                ScoringSpec(groups, seed, config.spectra, batch),
                tasks,
                place,
                memory_budget=budget,
                cpus=config.task_cpus,
                in_flight=config.max_tasks_in_flight,
            )
    except Exception as err:  # a task's read failed: name the damaged shards when there are some
        _name_unreadable_shards(fpath, err)
        raise
    units = [str(ens[v].attrs.get("units", "1")) for v in variables]
    summary = {"variables": variables, "members": int(m), "tasks": len(tasks), "init_times": int(n_init)}
    summary["peak_task_rss_mb"] = round(peak[0] / 2**20, 1)
    return collector.dataset(ens, units, seed), summary


def _stored_sums(config: ScoreConfig, ctx: StageContext) -> tuple[xr.Dataset, dict]:
    """The partial sums of the ``from_sums`` scores store, refused when it has none."""
    src = resolve_path(ctx.base, config.from_sums)
    if src.resolve() == resolve_path(ctx.base, config.output).resolve():
        raise ConfigError("from_sums: is the output itself; write the new scores to another path")
    try:
        sums = sums_of(open_zarr_dataset(src).load())
    except MismatchedSumsError as err:
        raise ConfigError(f"from_sums: {src}: {err}") from None
    except InputError as err:
        raise ConfigError(f"from_sums: {err}") from None
    variables = [str(v) for v in sums["variable"].values]
    return sums, {
        "variables": variables,
        "members": int(sums.attrs["members"]),
        "tasks": 0,
        "init_times": int(sums.sizes["init_time"]),
    }


def run(config: ScoreConfig, ctx: StageContext) -> dict:
    sums, summary = (_stored_sums if config.from_sums is not None else _scored_sums)(config, ctx)
    scores = finish_scores(sums, config.regions, config.weighting)
    scores.attrs.update(
        Conventions="CF-1.10",
        title="swarmcast ensemble scores",
        source=f"swarmcast {__version__}",
        history=f"scored by the score stage of swarmcast {__version__}",
        forecast=portable_path(config.forecast),  # as the pipeline names them, never this machine's folders
        truth=portable_path(config.truth),
        swarmcast_stage=json.dumps(ctx.fingerprint(config)),
        pipeline=json.dumps(ctx.pipeline_raw),
    )
    if config.from_sums is not None:
        scores.attrs["history"] += f"; finished from the partial sums of {portable_path(config.from_sums)}"
    out = resolve_path(ctx.base, config.output)
    tmp = staging(out)
    scores.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
    publish(tmp, out, marker="zarr.json")  # replaces an old output only with --overwrite (runner)
    print(
        f"[{config.label}] scored {len(summary['variables'])} variables x {summary['init_times']} init times -> {out}"
    )
    return {"path": str(out), **summary}
