"""Score an ensemble against its truth in this process: the content of the ``score`` stage's store.

``score_ensemble`` returns a small ``xr.Dataset`` with a ``variable`` dim of channel names and
a ``lead_time`` dim, plus ``region``, ``rank``, ``degree`` and ``ensemble_size`` where a metric
needs them (ARCHITECTURE.md, "Verification", describes the scores store), and the partial sums
they were finished from (``sums_store``). Spatial means are area-weighted (cell-area weights)
and taken over init times too; root-mean quantities are the root of the mean (WeatherBench2's
RMSE form):

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
  that valid time was not finite (the ``score`` stage's ``nonfinite_truth: skip``; else 0);
* the breakdowns per init time and checkpoint and the persistence and climatology references
  (``finish``).

The ``score`` stage runs the same tasks (``blocks``) as Ray tasks; this module runs them one
after another, for notebooks and tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from swarmcast.ops.errors import UnknownNameError
from swarmcast.ops.verification import metrics as ver
from swarmcast.ops.verification.blocks import DatasetSource, ScoringSpec, SumsCollector, plan_tasks, score_task
from swarmcast.ops.verification.finish import finish_scores
from swarmcast.ops.verification.partial_sums import MemberGroups

UNLIMITED = 1 << 62
"""A memory budget that never splits a block (in-process scoring of stores that fit)."""


def default_ensemble_sizes(members: int) -> list[int]:
    """2, 4, 8, ... below M, then M itself."""
    sizes, k = [], 2
    while k < members:
        sizes.append(k)
        k *= 2
    return [*sizes, members]


def check_request(members: int, regions: Sequence[str], ensemble_sizes: Sequence[int] | None) -> list[int]:
    """The sub-ensemble sizes to score; raises naming a bad region, size or ensemble."""
    if members < 2:
        raise ValueError("scoring an ensemble needs at least 2 members")
    unknown = sorted(set(regions) - set(ver.REGIONS))
    if unknown:
        raise UnknownNameError(f"unknown regions {unknown}; known: {sorted(ver.REGIONS)}")
    sizes = list(ensemble_sizes or default_ensemble_sizes(members))
    if any(k < 1 or k > members for k in sizes):
        raise ValueError(f"ensemble_sizes must lie in 1..{members} (the store has {members} members), got {sizes}")
    return sizes


def lead_spans(ensemble: xr.Dataset, variable: str) -> list[int]:
    """Leads per stored inner chunk (dask chunks of ``open_ensemble``), else one lead each."""
    a = ensemble[variable]
    if a.chunks is None:
        return [1] * ensemble.sizes["lead_time"]
    return list(a.chunks[a.dims.index("lead_time")])


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
    memory_budget_bytes: int = UNLIMITED,
    weighting: str = "area",
) -> xr.Dataset:
    """Scores of ``variables`` of ``ensemble`` (``open_ensemble``) against ``truth`` (``align_truth``).

    Streams the ensemble one task at a time (``blocks``: one variable, init time, stored
    chunk's leads and band of latitude rows within ``memory_budget_bytes``). Float64
    throughout: the ensemble mean of centred +/- pairs cancels to rounding, which float32 would
    show. ``skip``: per variable, a bool (init_time, lead_time) mask of blocks left out (the
    truth there is not finite), counted in ``truth_blocks_skipped``; ``climatology``: per
    variable a (lat, lon) field, by default the mean of ``truth`` over the init times it holds.
    """
    m = ensemble.sizes[ver.MEMBER]
    sizes = check_request(m, regions, ensemble_sizes)
    groups = MemberGroups.build([str(c) for c in ensemble["checkpoint"].values], sizes, bootstrap, seed)
    if climatology is None:
        climatology = {v: truth[v].isel(lead_time=0).mean("init_time").values for v in variables}
    source = DatasetSource(ensemble, truth, climatology, skip or {})
    n_init, n_lead = ensemble.sizes["init_time"], ensemble.sizes["lead_time"]
    nlat, nlon = ensemble.sizes["lat"], ensemble.sizes["lon"]
    collector = SumsCollector(variables, n_init, n_lead, nlat, groups)
    for v in variables:
        tasks, batch = plan_tasks([v], n_init, lead_spans(ensemble, v), m, nlat, nlon, memory_budget_bytes, spectra)
        spec = ScoringSpec(groups, seed, spectra, batch)
        for t in tasks:
            collector.add(score_task(source, t, spec))
    units = [str(ensemble[v].attrs.get("units", "1")) for v in variables]
    return finish_scores(collector.dataset(ensemble, units, seed), regions, weighting)


__all__ = ["UNLIMITED", "check_request", "default_ensemble_sizes", "lead_spans", "score_ensemble"]
