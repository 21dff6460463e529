"""Scores from partial sums: any region, latitude weighting or set of init times, after the fact.

``finish_scores(sums, regions)`` turns the sums of ``partial_sums`` (one ``xr.Dataset``, the
``sum_*`` and ``block_*`` arrays described in ``sums_dataset``) into the scores the ``score``
stage stores, without touching the ensemble: each score is a weighted sum over latitude rows,
init times and (for ranks, draws, checkpoints) a small extra axis, then a ratio. A new region
is a new row-weight vector; a subset of init dates is ``sums.isel(init_time=...)``.

Spatial means are area-weighted (cell-area row weights, or ``cos-lat``) over the region's
rows and all longitudes, and taken over the scored init times too; root-mean quantities are the
root of the mean (WeatherBench2's RMSE form). The score names, dims and units are listed in
``_META`` and ``_DIMS`` below (ARCHITECTURE.md, "Verification").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from swarmcast.kernels.ensemble_scores import expected_outlier_rate, spread_skill_ratio
from swarmcast.ops.data.cf import NO_FILL, squared_units
from swarmcast.ops.verification.metrics import region_row_weights
from swarmcast.ops.verification.partial_sums import CHECKPOINT_SUMS, POINT_SUMS, SIZE_SUMS

_META = {
    "rmse": ("ensemble-mean root mean squared error", 1),
    "spread": ("ensemble spread (root mean unbiased variance)", 1),
    "ssr": ("spread-skill ratio, finite-ensemble corrected", 0),
    "crps": ("fair CRPS: continuous ranked probability score, unbiased for an infinite ensemble", 1),
    "outlier_rate": ("fraction of area with the truth outside the ensemble range", 0),
    "best_member_rmse": ("RMSE of the closest member at each point", 1),
    "rank_histogram": ("area-weighted frequency of the truth's rank among members", 0),
    "rmse_by_size": ("ensemble-mean RMSE of random sub-ensembles (bootstrap mean)", 1),
    "empirical_crps_by_size": ("empirical (not fair) CRPS of random sub-ensembles of each size, bootstrap mean", 1),
    "spectrum_members": ("angular power spectrum C_l of members", 2),
    "spectrum_ensemble_mean": ("angular power spectrum C_l of the ensemble mean", 2),
    "spectrum_truth": ("angular power spectrum C_l of the truth", 2),
    "truth_blocks_skipped": ("init times left out of the scores: truth not finite at the valid time", 0),
    "crps_per_init": ("fair CRPS of each init time", 1),
    "mse_per_init": ("ensemble-mean squared error of each init time", 2),
    "variance_per_init": ("mean unbiased member variance of each init time", 2),
    "crps_per_checkpoint": ("fair CRPS of each checkpoint's members alone", 1),
    "rmse_per_checkpoint": ("ensemble-mean RMSE of each checkpoint's members alone", 1),
    "spread_per_checkpoint": ("spread of each checkpoint's members alone", 1),
    "persistence_rmse": ("RMSE of persistence (the truth at the init time)", 1),
    "persistence_crps": ("CRPS (mean absolute error) of persistence", 1),
    "climatology_rmse": ("RMSE of climatology (a mean field of the truth)", 1),
    "climatology_crps": ("CRPS (mean absolute error) of climatology", 1),
}
_REGIONAL = ("variable", "region", "lead_time")
_DIMS = {
    "rank_histogram": (*_REGIONAL, "rank"),
    "rmse_by_size": (*_REGIONAL, "ensemble_size"),
    "empirical_crps_by_size": (*_REGIONAL, "ensemble_size"),
    "spectrum_members": ("variable", "lead_time", "degree"),
    "spectrum_ensemble_mean": ("variable", "lead_time", "degree"),
    "spectrum_truth": ("variable", "lead_time", "degree"),
    "truth_blocks_skipped": ("variable", "lead_time"),
    **{f"{k}_per_init": (*_REGIONAL, "init_time") for k in ("crps", "mse", "variance")},
    **{f"{k}_per_checkpoint": (*_REGIONAL, "checkpoint") for k in ("crps", "rmse", "spread")},
}
SPECTRA = ("spectrum_members", "spectrum_ensemble_mean", "spectrum_truth")


def units_attrs(units: Sequence[str], power: int) -> dict[str, str]:
    """``units`` of a score whose values are in the variables' units to ``power`` (0: none,
    1: the variable's, 2: squared): a UDUNITS string where every variable shares one; where
    they differ no ``units`` (CF allows one per variable), and a comment naming the coordinate."""
    if power == 0:
        return {"units": "1"}
    if len(set(units)) == 1:
        return {"units": units[0] if power == 1 else squared_units(units[0])}
    which = "the units" if power == 1 else "the square of the units"
    return {"comment": f"in {which} of each variable: see the units coordinate"}


def _values(sums: xr.Dataset, name: str) -> np.ndarray:
    """A sums array as (variable, init_time, lead_time[, lat][, extra]) whatever its stored order."""
    return sums[name].transpose("variable", "init_time", "lead_time", "lat", ..., missing_dims="ignore").values


def _scores(sums: xr.Dataset, w: np.ndarray) -> dict[str, np.ndarray]:
    """Score arrays from the sums and row weights ``w`` (region, lat); dims as in ``_DIMS``."""
    scored = _values(sums, "block_scored").astype(np.float64)  # (variable, init, lead)
    per_row = float(sums.attrs["points_per_row"])
    area = w.sum(axis=1) * per_row  # (region,): weight of one block's points
    count = scored.sum(axis=1)  # (variable, lead)
    norm = count[:, None, :] * area[None, :, None]  # (variable, region, lead)

    def regional(name: str, extra: str = "") -> np.ndarray:
        """Weighted sum over rows, kept per init: (variable, region, lead, init[, extra])."""
        return np.einsum(f"rl,vijl{extra}->vrji{extra}", w, _values(sums, f"sum_{name}"))

    t = {k: regional(k).sum(axis=-1) / norm for k in POINT_SUMS}
    m = int(sums.attrs["members"])
    out = {
        "rmse": np.sqrt(t["mse"]),
        "spread": np.sqrt(t["variance"]),
        "ssr": spread_skill_ratio(t["variance"], t["mse"], m),
        "crps": t["crps"],
        "outlier_rate": t["outside"],
        "best_member_rmse": np.sqrt(t["best_member_mse"]),
        "persistence_rmse": np.sqrt(t["persistence_mse"]),
        "persistence_crps": t["persistence_mae"],
        "climatology_rmse": np.sqrt(t["climatology_mse"]),
        "climatology_crps": t["climatology_mae"],
        "truth_blocks_skipped": sums.sizes["init_time"] - count.astype(np.int64),
    }
    ranks = np.einsum("rl,vijlk->vrjk", w, _values(sums, "sum_rank_counts").astype(np.float64))
    out["rank_histogram"] = ranks / ranks.sum(axis=-1, keepdims=True)
    hidden = (scored == 0).transpose(0, 2, 1)[:, None]  # (variable, 1, lead, init)
    for k in ("crps", "mse", "variance"):
        out[f"{k}_per_init"] = np.where(hidden, np.nan, regional(k) / area[None, :, None, None])
    c = {k: regional(k, "c").sum(axis=-2) / norm[..., None] for k in CHECKPOINT_SUMS}
    out["crps_per_checkpoint"] = c["checkpoint_crps"]
    out["rmse_per_checkpoint"] = np.sqrt(c["checkpoint_mse"])
    out["spread_per_checkpoint"] = np.sqrt(c["checkpoint_variance"])
    d = {k: regional(k, "d").sum(axis=-2) / norm[..., None] for k in SIZE_SUMS}
    draw_size = sums["draw_size"].values
    sizes = list(dict.fromkeys(draw_size.tolist()))
    # bootstrap mean over each size's draws of the RMSE (root per draw) and of the CRPS
    out["rmse_by_size"] = np.stack([np.sqrt(d["size_mse"][..., draw_size == k]).mean(axis=-1) for k in sizes], -1)
    out["empirical_crps_by_size"] = np.stack([d["size_crps"][..., draw_size == k].mean(axis=-1) for k in sizes], -1)
    if "block_spectrum_members" in sums:
        for name in SPECTRA:
            block = np.nan_to_num(_values(sums, f"block_{name}")) * scored[..., None]  # (variable, init, lead, degree)
            out[name] = block.sum(axis=1) / count[..., None]
    return out


def finish_scores(sums: xr.Dataset, regions: Sequence[str], weighting: str = "area") -> xr.Dataset:
    """The scores store's content: scores over ``regions`` (dims as in ``_DIMS``) beside the sums.

    ``sums``: a ``sums_dataset`` (or a scores store's ``sum_*``/``block_*`` arrays, possibly with
    fewer init times). NaN where a lead has no scored block.
    """
    if not regions:
        raise ValueError("regions: give at least one region")
    w = np.stack([region_row_weights(sums["lat"].values, r, weighting) for r in regions])
    with np.errstate(invalid="ignore", divide="ignore"):
        values = _scores(sums, w)
    units = [str(u) for u in sums["units"].values]
    data_vars = {}
    for name, value in values.items():
        long_name, power = _META[name]
        dims = _DIMS.get(name, _REGIONAL)
        data_vars[name] = (dims, value, {"long_name": long_name, **units_attrs(units, power)})
    members = int(sums.attrs["members"])
    sizes = list(dict.fromkeys(sums["draw_size"].values.tolist()))
    coords = {
        "region": (
            "region",
            np.array(list(regions), dtype=object),
            {"long_name": "latitude band the scores are area means over"},
        ),
        "ensemble_size": ("ensemble_size", np.asarray(sizes), {"long_name": "members in the sub-ensemble"}),
    }
    ds = xr.Dataset(data_vars, coords=coords)
    ds = xr.merge([ds, sums], combine_attrs="override")
    ds["outlier_rate_expected"] = xr.DataArray(
        expected_outlier_rate(members),
        attrs={"long_name": "outlier rate of a consistent ensemble of M members: 2 / (M + 1)", "units": "1"},
    )
    ds.attrs = {**sums.attrs, "members": members}
    ds.attrs.update(init_times=int(sums.sizes["init_time"]), latitude_weighting=weighting)
    ds["lat"].encoding.update(NO_FILL)  # CF: a coordinate variable has no fill value
    return ds


__all__ = ["finish_scores", "units_attrs"]
