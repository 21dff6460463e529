"""Stage ``score``: an ensemble store against a truth store -> a scores Zarr store.

Runs lazily on dask over the ensemble store opened by ``swarmcast.ops.verification`` (member
axis in one chunk per init time and lead), computes the metrics of
``swarmcast.ops.verification.scoring.score_ensemble`` (the scores store's layout: ARCHITECTURE.md,
"The ensemble store") and writes them in a staging folder that is published when complete
(``swarmcast.ops.storage``), so an interrupted run never leaves a half-written scores store.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

from swarmcast.ops import __version__
from swarmcast.ops.data.cf import portable_path
from swarmcast.ops.data.finite import bad_states
from swarmcast.ops.data.readers import open_climate
from swarmcast.ops.ensemble.verify import check_store
from swarmcast.ops.errors import InputError
from swarmcast.ops.storage import publish, staging
from swarmcast.ops.verification import align_truth, open_ensemble
from swarmcast.ops.verification.scoring import score_ensemble
from swarmcast.pipelines.config import ConfigError, resolve_path
from swarmcast.pipelines.context import StageContext
from swarmcast.pipelines.stages.score.config import ScoreConfig


def _nonfinite_truth(config: ScoreConfig, ens: xr.Dataset, truth: xr.Dataset) -> dict[str, np.ndarray]:
    """Per variable, the bool (init_time, lead_time) blocks whose verifying state is not all
    finite; with ``nonfinite_truth: refuse`` a ConfigError naming each such state instead.
    Each truth state a forecast is scored against is read once (``ops.data.finite``)."""
    times = truth["time"].values.astype("datetime64[ns]")
    valid = ens["valid_time"].values.astype("datetime64[ns]")  # (init, lead)
    where = {t: i for i, t in enumerate(times)}
    bad = bad_states(truth, [where[t] for t in np.unique(valid)])
    if bad and config.nonfinite_truth == "refuse":
        shown = [f"truth: a valid time scored against is not usable: {b}" for b in bad[:10]]
        more = [f"truth: ... and {len(bad) - 10} more states"] if len(bad) > 10 else []
        hint = "nonfinite_truth: set it to 'skip' to leave those init times out of the scores at those leads"
        raise ConfigError([*shown, *more, hint])
    skip = {str(v): np.zeros(valid.shape, bool) for v in truth.data_vars}
    for b in bad:
        skip[b.channel] |= valid == b.time.astype("datetime64[ns]")
    return skip


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
    m = ens.sizes["member"]
    if m < 2:
        raise ConfigError(f"forecast: scoring needs an ensemble of at least 2 members, the store has {m}")
    if config.ensemble_sizes and not all(1 <= k <= m for k in config.ensemble_sizes):
        raise ConfigError(f"ensemble_sizes: {config.ensemble_sizes} must lie in 1..{m} (members in the forecast)")
    try:
        aligned = align_truth(ens, truth[variables])
    except ValueError as err:
        raise ConfigError(f"truth: {err}") from None
    # climatology: the truth store's mean over all its times (finite values only), one field each
    fields = truth[variables]
    climatology = {v: fields[v].where(np.isfinite(fields[v])).mean("time").values for v in variables}
    return ens, aligned, variables, _nonfinite_truth(config, ens, truth[variables]), climatology


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


def run(config: ScoreConfig, ctx: StageContext) -> dict:
    ens, truth, variables, skip, climatology = _open_inputs(config, ctx)
    for v, mask in skip.items():
        if mask.any():
            left = f"{int(mask.sum())} of {mask.size} blocks (init time, lead)"
            print(f"[{config.label}] {v}: {left} left out: the truth is not finite at their valid times")
    try:
        scores = score_ensemble(
            ens,
            truth,
            variables,
            regions=config.regions,
            ensemble_sizes=config.ensemble_sizes,
            bootstrap=config.bootstrap,
            spectra=config.spectra,
            seed=config.seed if config.seed is not None else ctx.seed,
            skip=skip,
            climatology=climatology,
        )
    except (ValueError, RuntimeError) as err:
        _name_unreadable_shards(resolve_path(ctx.base, config.forecast), err)
        raise
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
    out = resolve_path(ctx.base, config.output)
    tmp = staging(out)
    scores.to_zarr(tmp, mode="w", zarr_format=3, consolidated=True)
    publish(tmp, out, marker="zarr.json")  # replaces an old output only with --overwrite (runner)
    print(f"[{config.label}] scored {len(variables)} variables x {ens.sizes['init_time']} init times -> {out}")
    return {"path": str(out), "variables": variables, "members": int(ens.sizes["member"])}
