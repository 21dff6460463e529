"""Online ensemble summaries: per-unit partial statistics, merged exactly across units.

A 7,424-member campaign cannot keep every member of every variable (HENS kept 2 of ~25 PB),
so the hindcast can store, per chosen variable, the ensemble mean, variance, quantiles and
exceedance probabilities instead of (or beside) the members. Each work unit accumulates the
statistics of its own members while it runs and writes them to its own chunk of the
``summary_partials`` group (one chunk per (init time, unit), so units never share a chunk);
the coordinator merges the partials of an init time once all its units are done:

* mean and variance by Chan's parallel update (``kernels.moments.Moments``): exact;
* exceedance probabilities from summed counts of members above each threshold: exact;
* quantiles by inverting the pooled CDF of the units' piecewise-linear CDFs through
  (min, stored quantiles, max): exact when one unit holds all members, otherwise between the
  units' own quantiles (an approximation whose error shrinks as more quantiles are stored).

Merged variables sit at the store root beside the members: ``{v}_mean``, ``{v}_variance``
(unbiased), ``{v}_quantile`` (dim ``quantile``) and ``{v}_exceedance`` (dim ``threshold_{v}``,
in the variable's units), all ``(init_time, ..., lead_time, lat, lon)``, NaN until merged;
``summary_merged(init_time)`` says which init times are final.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import zarr

from swarmcast.kernels.moments import Moments
from swarmcast.ops.data.cf import squared_units
from swarmcast.ops.data.channels import channel_info
from swarmcast.ops.ensemble.chunking import INIT_BLOCK
from swarmcast.ops.storage import Location, as_zarr

PARTIALS = "summary_partials"


@dataclass(frozen=True)
class SummarySpec:
    """What to summarise: variables, quantile levels in (0, 1), thresholds per variable."""

    variables: tuple[str, ...]
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)
    thresholds: Mapping[str, Sequence[float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if any(not 0 < q < 1 for q in self.quantiles) or list(self.quantiles) != sorted(set(self.quantiles)):
            raise ValueError(f"quantiles must be increasing and inside (0, 1), got {list(self.quantiles)}")
        extra = sorted(set(self.thresholds) - set(self.variables))
        if extra:
            raise ValueError(f"thresholds for {extra}, which are not summarised variables {list(self.variables)}")

    def thresholds_of(self, v: str) -> np.ndarray:
        return np.asarray(self.thresholds.get(v, ()), dtype=np.float64)


def _array(
    group: zarr.Group, name: str, shape: tuple, chunks: tuple, dtype: str, dims: list[str], fill: object, **attrs: str
) -> None:
    group.create_array(
        name, shape=shape, chunks=chunks, dtype=dtype, fill_value=fill, dimension_names=dims, attributes=attrs
    )


def create_summary_arrays(
    path: str | os.PathLike | Location,
    spec: SummarySpec,
    shape: tuple[int, int, int, int, int],
    units: Mapping[str, str],
) -> None:
    """Create the partial and merged arrays (metadata only) in an ensemble store being built.

    ``shape``: (init times, units per init time, saved leads, nlat, nlon); ``units``: physical
    units per variable (for the attributes).
    """
    n_init, n_units, n_lead, nlat, nlon = shape
    root = zarr.open_group(as_zarr(path), mode="r+", use_consolidated=False)
    part = root.create_group(PARTIALS)
    grid, q = (n_lead, nlat, nlon), len(spec.quantiles)
    per_unit = ["init_time", "unit", "lead_time", "lat", "lon"]
    root.create_array(
        "quantile",
        data=np.asarray(spec.quantiles),
        dimension_names=["quantile"],
        attributes={"long_name": "probability of the ensemble quantile", "units": "1"},
    )
    _array(
        root,
        "summary_merged",
        (n_init,),
        (INIT_BLOCK,),  # a fixed block of dates: a growing store keeps its earlier flags in place
        "bool",
        ["init_time"],
        False,
        long_name="summaries of the init time merged from all its units",
    )
    for v in spec.variables:
        t = len(spec.thresholds_of(v))
        for stat, dtype in (("mean", "f8"), ("m2", "f8"), ("min", "f4"), ("max", "f4")):
            _array(part, f"{v}_{stat}", (n_init, n_units, *grid), (1, 1, *grid), dtype, per_unit, np.nan)
        qdims = ["init_time", "unit", "quantile", "lead_time", "lat", "lon"]
        _array(part, f"{v}_quantiles", (n_init, n_units, q, *grid), (1, 1, q, *grid), "f4", qdims, np.nan)
        tdims = ["init_time", "unit", "threshold", "lead_time", "lat", "lon"]
        _array(part, f"{v}_above", (n_init, n_units, t, *grid), (1, 1, max(t, 1), *grid), "i4", tdims, 0)
        dims = ["init_time", "lead_time", "lat", "lon"]
        u = units.get(v, "1")
        info = channel_info(v)
        of = f"{info.long_name.lower()} ({v})" if info is not None else v  # "fluid layer depth (h)"
        _array(
            root,
            f"{v}_mean",
            (n_init, *grid),
            (1, *grid),
            "f4",
            dims,
            np.nan,
            long_name=f"ensemble mean of {of}",
            units=u,
            **({"standard_name": info.standard_name} if info is not None and info.standard_name else {}),
        )
        _array(
            root,
            f"{v}_variance",
            (n_init, *grid),
            (1, *grid),
            "f4",
            dims,
            np.nan,
            long_name=f"ensemble variance of {of} (unbiased)",
            units=squared_units(u),
        )
        qd = [dims[0], "quantile", *dims[1:]]
        _array(
            root,
            f"{v}_quantile",
            (n_init, q, *grid),
            (1, q, *grid),
            "f4",
            qd,
            np.nan,
            long_name=f"ensemble quantile of {of}",
            units=u,
        )
        tdim = f"threshold_{v}"
        root.create_array(
            tdim,
            data=spec.thresholds_of(v),
            dimension_names=[tdim],
            attributes={"units": u, "long_name": f"threshold of {of}"},
        )
        _array(
            root,
            f"{v}_exceedance",
            (n_init, t, *grid),
            (1, max(t, 1), *grid),
            "f4",
            [dims[0], tdim, *dims[1:]],
            np.nan,
            long_name=f"fraction of members with {of} above the threshold",
            units="1",
        )


class UnitSummary:
    """Accumulates one unit's statistics lead by lead; ``write`` puts them in the unit's chunks."""

    def __init__(self, spec: SummarySpec, channels: Sequence[str]) -> None:
        self.spec = spec
        self.index = [list(channels).index(v) for v in spec.variables]
        self.leads: list[dict[str, list[np.ndarray]]] = [{} for _ in spec.variables]

    def add(self, states: np.ndarray) -> None:
        """``states``: (members, 1, channels, lat, lon) for the next saved lead (all model channels)."""
        for k, (v, c) in enumerate(zip(self.spec.variables, self.index, strict=True)):
            x = states[:, 0, c].astype(np.float64)
            mom = Moments.of(x, axis=0)
            stats = {
                "mean": mom.mean,
                "m2": mom.m2,
                "min": x.min(axis=0),
                "max": x.max(axis=0),
                "quantiles": np.quantile(x, self.spec.quantiles, axis=0),
                "above": (x[None] > self.spec.thresholds_of(v)[:, None, None, None]).sum(axis=1),
            }
            for name, value in stats.items():
                self.leads[k].setdefault(name, []).append(value)

    def write(self, path: str | os.PathLike | Location, init: int, unit: int) -> None:
        part = zarr.open_group(as_zarr(path), mode="r+", use_consolidated=False)[PARTIALS]
        for v, acc in zip(self.spec.variables, self.leads, strict=True):
            for name, values in acc.items():
                if values[0].size == 0:  # no thresholds for this variable
                    continue
                axis = 0 if values[0].ndim == 2 else 1  # (lat, lon) per lead, or (q|t, lat, lon)
                part[f"{v}_{name}"][init, unit] = np.stack(values, axis=axis)


def pooled_quantiles(knots: np.ndarray, probs: np.ndarray, weights: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles of a mixture of piecewise-linear CDFs, by bisection.

    ``knots``: (U, K, ...) increasing values of each unit's CDF at ``probs`` (K,), from 0 at its
    minimum to 1 at its maximum; ``weights``: (U,) mixture weights summing to 1; returns
    (len(levels), ...).
    """
    lo = knots[:, 0].min(axis=0)
    hi = knots[:, -1].max(axis=0)
    dp = np.diff(probs).reshape(1, -1, *([1] * (knots.ndim - 2)))
    left, right = knots[:, :-1], knots[:, 1:]
    width = right - left
    w = weights.reshape(-1, *([1] * (knots.ndim - 1)))

    def cdf(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.where(width > 0, np.clip((x - left) / width, 0.0, 1.0), (x >= right).astype(np.float64))
        return (w * (frac * dp).sum(axis=1, keepdims=True)).sum(axis=0)[0]

    out = []
    for p in levels:
        a, b = lo.copy(), hi.copy()
        for _ in range(60):  # 2^-60 of the range: float64-exact
            mid = 0.5 * (a + b)
            below = cdf(mid) < p
            a, b = np.where(below, mid, a), np.where(below, b, mid)
        out.append(0.5 * (a + b))
    return np.stack(out)


def merge_init(path: str | os.PathLike | Location, spec: SummarySpec, init: int, members_per_unit: int) -> None:
    """Merge every unit's partials of one init time into the root summary variables."""
    root = zarr.open_group(as_zarr(path), mode="r+", use_consolidated=False)
    part = root[PARTIALS]
    levels = np.asarray(spec.quantiles)
    probs = np.concatenate([[0.0], levels, [1.0]])
    for v in spec.variables:
        mean, m2 = part[f"{v}_mean"][init], part[f"{v}_m2"][init]  # (U, lead, lat, lon)
        total = Moments.empty(mean.shape[1:])
        for u in range(mean.shape[0]):
            total = total.merge(Moments(float(members_per_unit), mean[u], m2[u]))
        root[f"{v}_mean"][init] = total.mean
        root[f"{v}_variance"][init] = total.variance(ddof=1) if total.count > 1 else np.zeros_like(total.mean)
        above = part[f"{v}_above"][init].sum(axis=0)  # (t, lead, lat, lon)
        if above.shape[0]:
            root[f"{v}_exceedance"][init] = above / total.count
        knots = np.concatenate(
            [part[f"{v}_min"][init][:, None], part[f"{v}_quantiles"][init], part[f"{v}_max"][init][:, None]], axis=1
        ).astype(np.float64)
        weights = np.full(knots.shape[0], 1.0 / knots.shape[0])
        root[f"{v}_quantile"][init] = pooled_quantiles(knots, probs, weights, levels)
    root["summary_merged"][init] = True


__all__ = ["PARTIALS", "SummarySpec", "UnitSummary", "create_summary_arrays", "merge_init", "pooled_quantiles"]
