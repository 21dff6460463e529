"""Score an ensemble against its truth: the content of the ``score`` stage's store (design §5).

``score_ensemble`` returns a small ``xr.Dataset`` with a ``variable`` dim of channel names and
a ``lead_time`` dim, plus ``region``, ``rank``, ``degree`` and ``ensemble_size`` where a
metric needs them. Spatial means are area-weighted (cell-area weights) and taken over
init times too; root-mean quantities are the root of the mean (WeatherBench2's RMSE form):

* ``rmse``: ensemble-mean RMSE; ``spread``: sqrt of the mean unbiased member variance;
* ``ssr``: finite-M corrected spread-skill ratio; ``crps``: fair CRPS;
* ``rank_histogram``: area-weighted rank frequencies (sum 1 over ``rank`` 0..M);
* ``outlier_rate``: fraction of area where the truth is outside the members' range (a
  consistent ensemble gives ``2 / (M + 1)``, stored as ``outlier_rate_expected``);
* ``best_member_rmse``: root of the mean squared error of the closest member at each point;
* ``spectrum_members`` / ``spectrum_ensemble_mean`` / ``spectrum_truth``: angular power C_l
  (global), averaged over members and init times;
* ``rmse_by_size`` / ``crps_by_size``: means over ``bootstrap`` random sub-ensembles of each
  ``ensemble_size`` (drawn without replacement) of the ensemble-mean RMSE and the empirical
  (not fair) CRPS, which both fall as members are added; the fair CRPS would stay flat.
"""

from __future__ import annotations

from collections.abc import Sequence

import dask
import numpy as np
import torch
import xarray as xr

from swarmcast.kernels.ensemble_scores import expected_outlier_rate, spread_skill_ratio
from swarmcast.kernels.spectra import angular_power_spectrum
from swarmcast.ops import verification as ver

SPACE_TIME = ("init_time", "lat", "lon")


def default_ensemble_sizes(members: int) -> list[int]:
    """2, 4, 8, ... below M, then M itself."""
    sizes, k = [], 2
    while k < members:
        sizes.append(k)
        k *= 2
    return [*sizes, members]


def _reduce(field: xr.DataArray, regions: Sequence[str]) -> xr.DataArray:
    return xr.concat([ver.region_mean(field, r, SPACE_TIME) for r in regions], dim="region")


def _variable_scores(fc: xr.DataArray, obs: xr.DataArray, regions: Sequence[str]) -> dict[str, xr.DataArray]:
    mean = fc.mean(ver.MEMBER)
    lazy = {
        "mse": _reduce((mean - obs) ** 2, regions),
        "variance": _reduce(fc.var(ver.MEMBER, ddof=1), regions),
        "crps": _reduce(ver.crps(fc, obs), regions),
        "outlier_rate": _reduce(ver.outside_range(fc, obs).astype("f8"), regions),
        "best_member_mse": _reduce(ver.best_member_squared_error(fc, obs), regions),
    }
    (out,) = dask.compute(lazy)
    return out


def _rank_histograms(fc: xr.DataArray, obs: xr.DataArray, regions: Sequence[str], seed: int) -> np.ndarray:
    """(region, lead, M + 1) frequencies; ranks are computed lead by lead to bound memory."""
    m, lat = fc.sizes[ver.MEMBER], fc["lat"].values
    out = np.zeros((len(regions), fc.sizes["lead_time"], m + 1))
    for j in range(fc.sizes["lead_time"]):
        ranks = ver.truth_rank(fc.isel(lead_time=j), obs.isel(lead_time=j), seed=seed + j).values
        for i, r in enumerate(regions):
            out[i, j] = ver.weighted_rank_histogram(ranks, lat, m, r)
    return out


def _spectra(fc: xr.DataArray, obs: xr.DataArray) -> np.ndarray:
    """(3, lead, degree): C_l of members, ensemble mean and truth, averaged over init times."""
    n_init, n_lead = fc.sizes["init_time"], fc.sizes["lead_time"]
    acc = None
    for i in range(n_init):
        for j in range(n_lead):
            x = torch.as_tensor(np.asarray(fc.isel(init_time=i, lead_time=j).values, dtype=np.float64))
            y = torch.as_tensor(np.asarray(obs.isel(init_time=i, lead_time=j).values, dtype=np.float64))
            parts = [
                angular_power_spectrum(x).mean(dim=0),
                angular_power_spectrum(x.mean(dim=0)),
                angular_power_spectrum(y),
            ]
            if acc is None:
                acc = np.zeros((3, n_lead, parts[0].shape[-1]))
            acc[:, j] += np.stack([p.numpy() for p in parts]) / n_init
    assert acc is not None
    return acc


def _by_size(
    fc: xr.DataArray, obs: xr.DataArray, regions: Sequence[str], sizes: Sequence[int], bootstrap: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(region, lead, size) bootstrap means of ensemble-mean RMSE and empirical CRPS."""
    m = fc.sizes[ver.MEMBER]
    rng = np.random.default_rng(seed)
    lazy = []
    for k in sizes:
        draws = [np.arange(m)] if k == m else [np.sort(rng.choice(m, k, replace=False)) for _ in range(bootstrap)]
        for idx in draws:
            sub = fc.isel({ver.MEMBER: idx})
            lazy.append(
                (
                    k,
                    _reduce((sub.mean(ver.MEMBER) - obs) ** 2, regions),
                    _reduce(ver.crps(sub, obs, fair=False), regions),
                )
            )
    (computed,) = dask.compute([(mse, c) for _, mse, c in lazy])
    rmse = np.zeros((len(regions), fc.sizes["lead_time"], len(sizes)))
    crps = np.zeros_like(rmse)
    for s, k in enumerate(sizes):
        rows = [computed[n] for n, (kk, _, _) in enumerate(lazy) if kk == k]
        rmse[..., s] = np.mean([np.sqrt(mse.values) for mse, _ in rows], axis=0)
        crps[..., s] = np.mean([c.values for _, c in rows], axis=0)
    return rmse, crps


def score_ensemble(
    ensemble: xr.Dataset,
    truth: xr.Dataset,
    variables: Sequence[str],
    *,
    regions: Sequence[str] = ("global",),
    ensemble_sizes: Sequence[int] | None = None,
    bootstrap: int = 10,
    spectra: bool = True,
    seed: int = 0,
) -> xr.Dataset:
    """Scores of ``variables`` of ``ensemble`` (``open_ensemble``) against ``truth`` (``align_truth``)."""
    m = ensemble.sizes[ver.MEMBER]
    if m < 2:
        raise ValueError("scoring an ensemble needs at least 2 members")
    unknown = sorted(set(regions) - set(ver.REGIONS))
    if unknown:
        raise KeyError(f"unknown regions {unknown}; known: {sorted(ver.REGIONS)}")
    sizes = list(ensemble_sizes or default_ensemble_sizes(m))
    if any(k < 1 or k > m for k in sizes):
        raise ValueError(f"ensemble_sizes must lie in 1..{m} (the store has {m} members), got {sizes}")
    per_var: dict[str, list[np.ndarray]] = {}
    for v in variables:
        # float64: ensemble means of centred pairs cancel to rounding, which float32 would show
        fc, obs = ensemble[v].astype(np.float64), truth[v].astype(np.float64)
        s = _variable_scores(fc, obs, regions)
        rmse_k, crps_k = _by_size(fc, obs, regions, sizes, bootstrap, seed)
        fields = {
            "rmse": np.sqrt(s["mse"].values),
            "spread": np.sqrt(s["variance"].values),
            "ssr": spread_skill_ratio(s["variance"].values, s["mse"].values, m),
            "crps": s["crps"].values,
            "outlier_rate": s["outlier_rate"].values,
            "best_member_rmse": np.sqrt(s["best_member_mse"].values),
            "rank_histogram": _rank_histograms(fc, obs, regions, seed),
            "rmse_by_size": rmse_k,
            "crps_by_size": crps_k,
        }
        if spectra:
            members, mean, true = _spectra(fc, obs)
            fields |= {"spectrum_members": members, "spectrum_ensemble_mean": mean, "spectrum_truth": true}
        for name, value in fields.items():
            per_var.setdefault(name, []).append(value)
    return _assemble(ensemble, variables, regions, sizes, per_var, m)


_META = {
    "rmse": ("ensemble-mean root mean squared error", 1),
    "spread": ("ensemble spread (root mean unbiased variance)", 1),
    "ssr": ("spread-skill ratio, finite-ensemble corrected", 0),
    "crps": ("fair continuous ranked probability score", 1),
    "outlier_rate": ("fraction of area with the truth outside the ensemble range", 0),
    "best_member_rmse": ("RMSE of the closest member at each point", 1),
    "rank_histogram": ("area-weighted frequency of the truth's rank among members", 0),
    "rmse_by_size": ("ensemble-mean RMSE of random sub-ensembles (bootstrap mean)", 1),
    "crps_by_size": ("empirical CRPS of random sub-ensembles (bootstrap mean)", 1),
    "spectrum_members": ("angular power spectrum C_l of members", 2),
    "spectrum_ensemble_mean": ("angular power spectrum C_l of the ensemble mean", 2),
    "spectrum_truth": ("angular power spectrum C_l of the truth", 2),
}
_DIMS = {
    "rank_histogram": ("variable", "region", "lead_time", "rank"),
    "rmse_by_size": ("variable", "region", "lead_time", "ensemble_size"),
    "crps_by_size": ("variable", "region", "lead_time", "ensemble_size"),
    "spectrum_members": ("variable", "lead_time", "degree"),
    "spectrum_ensemble_mean": ("variable", "lead_time", "degree"),
    "spectrum_truth": ("variable", "lead_time", "degree"),
}


def _assemble(
    ensemble: xr.Dataset,
    variables: Sequence[str],
    regions: Sequence[str],
    sizes: Sequence[int],
    per_var: dict[str, list[np.ndarray]],
    members: int,
) -> xr.Dataset:
    units = [str(ensemble[v].attrs.get("units", "1")) for v in variables]
    data_vars = {}
    for name, stack in per_var.items():
        long_name, power = _META[name]
        unit = ["1", "units of the variable (coordinate 'units')", "square of the variable's units"][power]
        dims = _DIMS.get(name, ("variable", "region", "lead_time"))
        data_vars[name] = (dims, np.stack(stack), {"long_name": long_name, "units": unit})
    text = lambda items: np.array([str(i) for i in items], dtype=object)  # noqa: E731  (zarr v3 vlen strings)
    coords = {
        "variable": text(variables),
        "region": text(regions),
        "lead_time": ensemble["lead_time"].values,
        "rank": np.arange(members + 1),
        "ensemble_size": np.asarray(sizes),
        "units": ("variable", text(units)),
    }
    if "spectrum_members" in per_var:
        coords["degree"] = np.arange(per_var["spectrum_members"][0].shape[-1])
    ds = xr.Dataset(data_vars, coords=coords)
    ds["outlier_rate_expected"] = xr.DataArray(expected_outlier_rate(members), attrs={"long_name": "2 / (M + 1)"})
    ds.attrs.update(members=members, init_times=int(ensemble.sizes["init_time"]))
    return ds


__all__ = ["default_ensemble_sizes", "score_ensemble"]
