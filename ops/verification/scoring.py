"""Score an ensemble against its truth: the content of the ``score`` stage's store.

``score_ensemble`` returns a small ``xr.Dataset`` with a ``variable`` dim of channel names and
a ``lead_time`` dim, plus ``region``, ``rank``, ``degree`` and ``ensemble_size`` where a metric
needs them (ARCHITECTURE.md, "The ensemble store", describes the scores store). Spatial means
are area-weighted (cell-area weights) and taken over init times too; root-mean quantities are
the root of the mean (WeatherBench2's RMSE form):

* ``rmse``: ensemble-mean RMSE; ``spread``: sqrt of the mean unbiased member variance;
* ``ssr``: finite-M corrected spread-skill ratio; ``crps``: fair CRPS;
* ``rank_histogram``: area-weighted rank frequencies (sum 1 over ``rank`` 0..M);
* ``outlier_rate``: fraction of area where the truth is outside the members' range (a
  consistent ensemble gives ``2 / (M + 1)``, stored as ``outlier_rate_expected``);
* ``best_member_rmse``: root of the mean squared error of the closest member at each point;
* ``spectrum_members`` / ``spectrum_ensemble_mean`` / ``spectrum_truth``: angular power C_l
  (global), averaged over members and init times;
* ``rmse_by_size`` / ``empirical_crps_by_size``: means over ``bootstrap`` random sub-ensembles of each
  ``ensemble_size`` (drawn without replacement) of the ensemble-mean RMSE and the empirical
  (not fair) CRPS, which both fall as members are added; the fair CRPS would stay flat;
* ``truth_blocks_skipped``: init times left out per variable and lead because the truth at
  that valid time was not finite (the ``score`` stage's ``nonfinite_truth: skip``; else 0).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
import xarray as xr

from swarmcast.kernels import ensemble_scores as ks
from swarmcast.kernels.ensemble_scores import expected_outlier_rate, spread_skill_ratio
from swarmcast.kernels.spectra import angular_power_spectrum
from swarmcast.ops.data.cf import LEAD_TIME_ATTRS, squared_units
from swarmcast.ops.errors import UnknownNameError
from swarmcast.ops.verification import metrics as ver
from swarmcast.ops.verification.breakdowns import Breakdowns


def default_ensemble_sizes(members: int) -> list[int]:
    """2, 4, 8, ... below M, then M itself."""
    sizes, k = [], 2
    while k < members:
        sizes.append(k)
        k *= 2
    return [*sizes, members]


class _Accumulator:
    """Area-weighted sums per (region, lead) over init times, fed one (init, lead) block at a time.

    Memory is one block: members x lat x lon float64. Each block is read once and every metric
    (including all bootstrap sub-ensembles) is computed from it in numpy.
    """

    POINTWISE = ("mse", "variance", "crps", "outlier_rate", "best_member_mse")

    def __init__(self, lat: np.ndarray, regions: Sequence[str], n_lead: int, m: int, draws: list[list[np.ndarray]]):
        self.weights = np.stack([ver.region_row_weights(lat, r) for r in regions])  # (region, lat)
        shape = (len(regions), n_lead)
        self.sums = {k: np.zeros(shape) for k in self.POINTWISE}
        self.norm = np.zeros(shape)
        self.ranks = np.zeros((*shape, m + 1))
        self.draws = draws
        self.size_mse = np.zeros((*shape, sum(len(d) for d in draws)))
        self.size_crps = np.zeros_like(self.size_mse)
        self.spectra: np.ndarray | None = None
        self.blocks = np.zeros(n_lead)
        """(init, lead) blocks added per lead."""
        self.m = m

    def _area(self, field: np.ndarray) -> np.ndarray:
        """Weighted sums over (lat, lon) of ``field`` (..., lat, lon) per region: (region, ...)."""
        return np.einsum("rl,...lk->r...", self.weights, field)

    def add(self, j: int, x: np.ndarray, y: np.ndarray, rng: np.random.Generator, spectra: bool) -> None:
        """Lead index ``j``; ``x`` members (M, lat, lon) and ``y`` truth (lat, lon), float64."""
        mean, var = ks.ensemble_mean_variance(x)
        fields = {
            "mse": (mean - y) ** 2,
            "variance": var,
            "crps": ks.fair_crps(x, y),
            "outlier_rate": ks.outside_range(x, y).astype(np.float64),
            "best_member_mse": ks.best_member_squared_error(x, y),
        }
        self.blocks[j] += 1
        for k, f in fields.items():
            self.sums[k][:, j] += self._area(f)
        self.norm[:, j] += self.weights.sum(axis=1) * y.shape[-1]
        ranks = ks.truth_rank(x, y, rng=rng)
        for i, w in enumerate(self.weights):
            self.ranks[i, j] += ks.rank_histogram(ranks, self.m, np.broadcast_to(w[:, None], ranks.shape))
        n = 0
        for group in self.draws:
            for idx in group:
                sub = x[idx]
                self.size_mse[:, j, n] += self._area((sub.mean(axis=0) - y) ** 2)
                self.size_crps[:, j, n] += self._area(ks.fair_crps(sub, y, fair=False))
                n += 1
        if spectra:
            t = torch.as_tensor(x)
            parts = [angular_power_spectrum(t).mean(dim=0), angular_power_spectrum(t.mean(dim=0))]
            parts.append(angular_power_spectrum(torch.as_tensor(y)))
            block = np.stack([p.numpy() for p in parts])  # (3, degree)
            if self.spectra is None:
                self.spectra = np.zeros((3, self.norm.shape[1], block.shape[-1]))
            self.spectra[:, j] += block

    def result(self) -> dict[str, np.ndarray]:
        """Scores per (region, lead); NaN at a lead whose every block was skipped."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._finish()

    def _finish(self) -> dict[str, np.ndarray]:
        mean = {k: v / self.norm for k, v in self.sums.items()}
        m = self.m
        out = {
            "rmse": np.sqrt(mean["mse"]),
            "spread": np.sqrt(mean["variance"]),
            "ssr": spread_skill_ratio(mean["variance"], mean["mse"], m),
            "crps": mean["crps"],
            "outlier_rate": mean["outlier_rate"],
            "best_member_rmse": np.sqrt(mean["best_member_mse"]),
            "rank_histogram": self.ranks / self.ranks.sum(axis=-1, keepdims=True),
        }
        rmse_k, crps_k, n = [], [], 0
        for group in self.draws:  # bootstrap mean of each size's RMSE (root per draw) and CRPS
            cols = slice(n, n + len(group))
            rmse_k.append(np.sqrt(self.size_mse[..., cols] / self.norm[..., None]).mean(axis=-1))
            crps_k.append((self.size_crps[..., cols] / self.norm[..., None]).mean(axis=-1))
            n += len(group)
        out["rmse_by_size"], out["empirical_crps_by_size"] = np.stack(rmse_k, axis=-1), np.stack(crps_k, axis=-1)
        if self.spectra is not None:
            spec = self.spectra / self.blocks[None, :, None]
            out |= {"spectrum_members": spec[0], "spectrum_ensemble_mean": spec[1], "spectrum_truth": spec[2]}
        return out


def _draws(m: int, sizes: Sequence[int], bootstrap: int, rng: np.random.Generator) -> list[list[np.ndarray]]:
    """Member subsets per size (the same subsets for every init time and lead)."""
    return [
        [np.arange(m)] if k == m else [np.sort(rng.choice(m, k, replace=False)) for _ in range(bootstrap)]
        for k in sizes
    ]


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
    skip: Mapping[str, np.ndarray] | None = None,
    climatology: Mapping[str, np.ndarray] | None = None,
) -> xr.Dataset:
    """Scores of ``variables`` of ``ensemble`` (``open_ensemble``) against ``truth`` (``align_truth``).

    Streams the ensemble one (init time, lead) block of all members at a time, so memory is
    M x lat x lon float64 whatever the store's size. Float64 throughout: the ensemble mean of
    centred +/- pairs cancels to rounding, which float32 would show. ``skip``: per variable, a
    bool (init_time, lead_time) mask of blocks left out (the truth there is not finite); the
    count left out per variable and lead is stored as ``truth_blocks_skipped``. Breakdowns per
    init time and checkpoint and the persistence and climatology references are scored too
    (``swarmcast.ops.verification.breakdowns``); ``climatology``: per variable a (lat, lon)
    field, by default the mean of ``truth`` over the init times it holds.
    """
    m = ensemble.sizes[ver.MEMBER]
    if m < 2:
        raise ValueError("scoring an ensemble needs at least 2 members")
    unknown = sorted(set(regions) - set(ver.REGIONS))
    if unknown:
        raise UnknownNameError(f"unknown regions {unknown}; known: {sorted(ver.REGIONS)}")
    sizes = list(ensemble_sizes or default_ensemble_sizes(m))
    if any(k < 1 or k > m for k in sizes):
        raise ValueError(f"ensemble_sizes must lie in 1..{m} (the store has {m} members), got {sizes}")
    n_init, n_lead = ensemble.sizes["init_time"], ensemble.sizes["lead_time"]
    per_var: dict[str, list[np.ndarray]] = {}
    for v in variables:
        draws = _draws(m, sizes, bootstrap, np.random.default_rng(seed))
        acc = _Accumulator(ensemble["lat"].values, regions, n_lead, m, draws)
        parts = Breakdowns(acc.weights, n_init, n_lead, ensemble["checkpoint"].values)
        clim = np.asarray(
            climatology[v] if climatology is not None else truth[v].isel(lead_time=0).mean("init_time").values,
            dtype=np.float64,
        )
        fc = ensemble[v].transpose("init_time", "lead_time", ver.MEMBER, "lat", "lon")
        obs = truth[v].transpose("init_time", "lead_time", "lat", "lon")
        left_out = np.zeros((n_init, n_lead), bool) if skip is None or v not in skip else np.asarray(skip[v], bool)
        # leads in slabs of the store's inner chunks: a tiled chunk holds several leads, and
        # reading them one at a time would decode it once per lead
        spans = fc.chunks[1] if fc.chunks is not None else (1,) * n_lead
        for i in range(n_init):
            lo = 0
            for span in spans:
                slab = fc[i, lo : lo + span].values  # (span, member, lat, lon)
                for j in range(lo, lo + span):
                    if left_out[i, j]:
                        continue
                    x = np.asarray(slab[j - lo], dtype=np.float64)
                    y = np.asarray(obs[i, j].values, dtype=np.float64)
                    acc.add(j, x, y, np.random.default_rng([seed, i, j]), spectra)
                    parts.add(i, j, x, y, np.asarray(obs[i, 0].values, dtype=np.float64), clim)
                lo += span
        for name, value in (acc.result() | parts.result()).items():
            per_var.setdefault(name, []).append(value)
        per_var.setdefault("truth_blocks_skipped", []).append(left_out.sum(axis=0))
    return _assemble(ensemble, variables, regions, sizes, per_var, m)


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
_DIMS = {
    "rank_histogram": ("variable", "region", "lead_time", "rank"),
    "rmse_by_size": ("variable", "region", "lead_time", "ensemble_size"),
    "empirical_crps_by_size": ("variable", "region", "lead_time", "ensemble_size"),
    "spectrum_members": ("variable", "lead_time", "degree"),
    "spectrum_ensemble_mean": ("variable", "lead_time", "degree"),
    "spectrum_truth": ("variable", "lead_time", "degree"),
    "truth_blocks_skipped": ("variable", "lead_time"),
    **{f"{k}_per_init": ("variable", "region", "lead_time", "init_time") for k in ("crps", "mse", "variance")},
    **{f"{k}_per_checkpoint": ("variable", "region", "lead_time", "checkpoint") for k in ("crps", "rmse", "spread")},
}


def _units_attrs(units: Sequence[str], power: int) -> dict[str, str]:
    """``units`` of a score whose values are in the variables' units to ``power`` (0: none,
    1: the variable's, 2: squared): a UDUNITS string where every variable shares one; where
    they differ no ``units`` (CF allows one per variable), and a comment naming the coordinate."""
    if power == 0:
        return {"units": "1"}
    if len(set(units)) == 1:
        return {"units": units[0] if power == 1 else squared_units(units[0])}
    which = "the units" if power == 1 else "the square of the units"
    return {"comment": f"in {which} of each variable: see the units coordinate"}


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
        attrs = {"long_name": long_name, **_units_attrs(units, power)}
        dims = _DIMS.get(name, ("variable", "region", "lead_time"))
        data_vars[name] = (dims, np.stack(stack), attrs)
    text = lambda items: np.array([str(i) for i in items], dtype=object)  # noqa: E731  (zarr v3 vlen strings)
    coords = {
        "variable": ("variable", text(variables), {"long_name": "forecast variable"}),
        "region": ("region", text(regions), {"long_name": "latitude band the scores are area means over"}),
        "lead_time": ("lead_time", ensemble["lead_time"].values, LEAD_TIME_ATTRS),
        "rank": ("rank", np.arange(members + 1), {"long_name": "number of members below the truth", "units": "1"}),
        "ensemble_size": ("ensemble_size", np.asarray(sizes), {"long_name": "members in the sub-ensemble"}),
        "units": ("variable", text(units), {"long_name": "units of each forecast variable"}),
        "init_time": ("init_time", ensemble["init_time"].values, {"standard_name": "forecast_reference_time"}),
        "checkpoint": (
            "checkpoint",
            text(dict.fromkeys(str(c) for c in ensemble["checkpoint"].values)),
            {"long_name": "model checkpoint"},
        ),
    }
    if "spectrum_members" in per_var:
        degrees = np.arange(per_var["spectrum_members"][0].shape[-1])
        coords["degree"] = ("degree", degrees, {"long_name": "spherical harmonic degree", "units": "1"})
    ds = xr.Dataset(data_vars, coords=coords)
    ds["outlier_rate_expected"] = xr.DataArray(
        expected_outlier_rate(members),
        attrs={"long_name": "outlier rate of a consistent ensemble of M members: 2 / (M + 1)", "units": "1"},
    )
    ds.attrs.update(members=members, init_times=int(ensemble.sizes["init_time"]))
    return ds


__all__ = ["default_ensemble_sizes", "score_ensemble"]
