"""The partial sums as arrays of the scores store, and the identity that says which sums add up.

A scores store keeps, beside its scores, the sums they were finished from (``partial_sums``):

* ``sum_<name>`` (variable, init_time, lead_time, lat), ``sum_rank_counts`` (..., lat, rank),
  ``sum_size_mse`` / ``sum_size_crps`` (..., lat, draw), ``sum_checkpoint_*`` (..., lat,
  checkpoint): sums over longitude, unweighted; ``points_per_row`` (attribute) longitudes;
* ``block_spectrum_members`` / ``_ensemble_mean`` / ``_truth`` (variable, init_time,
  lead_time, degree): each block's C_l;
* ``block_scored`` (variable, init_time, lead_time): False where the block was left out (the
  truth not finite) or has not been scored yet; its sums are 0 there.

Sums only add up when they were made the same way: the same members and checkpoint labels,
sub-ensemble draws, rank seed and grid. ``sums_identity`` is a digest of those, stored as the
``sums_identity`` attribute; ``check_same_sums`` refuses to mix sums whose digests differ.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from swarmcast.ops.data.cf import LAT_ATTRS, LEAD_TIME_ATTRS
from swarmcast.ops.errors import InputError
from swarmcast.ops.verification.partial_sums import MemberGroups

if TYPE_CHECKING:
    from swarmcast.ops.verification.blocks import SumsCollector

SPECTRUM_ROWS = ("spectrum_members", "spectrum_ensemble_mean", "spectrum_truth")


class MismatchedSumsError(InputError):
    """Partial sums made another way (members, draws, seed or grid) cannot be merged."""


def sums_identity(groups: MemberGroups, seed: int, lat: np.ndarray, nlon: int) -> str:
    """A digest of everything that decides what a block's sums are, besides the data."""
    doc = {
        "checkpoints": {c: idx.tolist() for c, idx in groups.checkpoints.items()},
        "draws": [d.tolist() for d in groups.draws],
        "seed": int(seed),
        "lat": np.round(np.asarray(lat, np.float64), 6).tolist(),
        "nlon": int(nlon),
    }
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def check_same_sums(have: xr.Dataset, identity: str, what: str) -> None:
    """Raise ``MismatchedSumsError`` unless ``have`` (a scores store) holds sums of ``identity``."""
    found = have.attrs.get("sums_identity")
    if found is None:
        raise MismatchedSumsError(f"{what}: holds no partial sums (written before they were kept); score it again")
    if found != identity:
        raise MismatchedSumsError(
            f"{what}: its partial sums were made another way (members, checkpoints, sub-ensemble draws, "
            f"seed or grid: identity {found}, these are {identity}); they cannot be merged"
        )


def _text(items: Sequence[object]) -> np.ndarray:
    return np.array([str(i) for i in items], dtype=object)  # zarr v3 variable-length strings


def sums_dataset(collector: SumsCollector, ensemble: xr.Dataset, units: Sequence[str], seed: int) -> xr.Dataset:
    """The collector's sums with the coordinates of ``ensemble`` (the store the tasks read)."""
    g = collector.groups
    lead = ("variable", "init_time", "lead_time")
    rows = (*lead, "lat")
    extra = {"rank_counts": "rank", "size_mse": "draw", "size_crps": "draw"}
    data = {}
    for name, value in collector.sums.items():
        dims = (*rows, extra.get(name, "checkpoint")) if value.ndim == 5 else rows
        attrs = {"long_name": f"sum over longitude of {name.replace('_', ' ')} per latitude row (partial sum)"}
        data[f"sum_{name}"] = (dims, value, attrs)
    data["block_scored"] = (lead, collector.scored, {"long_name": "block (variable, init, lead) in the sums"})
    if collector.spectra is not None:
        for k, name in enumerate(SPECTRUM_ROWS):
            data[f"block_{name}"] = (
                (*lead, "degree"),
                collector.spectra[..., k, :],
                {"long_name": f"C_l per block: {name}"},
            )
    coords = {
        "variable": ("variable", _text(collector.variables), {"long_name": "forecast variable"}),
        "units": ("variable", _text(units), {"long_name": "units of each forecast variable"}),
        "init_time": ("init_time", ensemble["init_time"].values, {"standard_name": "forecast_reference_time"}),
        "lead_time": ("lead_time", ensemble["lead_time"].values, LEAD_TIME_ATTRS),
        "lat": ("lat", ensemble["lat"].values, LAT_ATTRS),
        "rank": ("rank", np.arange(g.members + 1), {"long_name": "number of members below the truth", "units": "1"}),
        "draw_size": ("draw", g.draw_size, {"long_name": "members in each random sub-ensemble"}),
        "checkpoint": ("checkpoint", _text(g.checkpoints), {"long_name": "model checkpoint"}),
    }
    if collector.spectra is not None:
        degrees = np.arange(collector.spectra.shape[-1])
        coords["degree"] = ("degree", degrees, {"long_name": "spherical harmonic degree", "units": "1"})
    nlon = ensemble.sizes["lon"]
    attrs = {
        "members": g.members,
        "points_per_row": nlon,
        "sums_identity": sums_identity(g, seed, ensemble["lat"].values, nlon),
    }
    ds = xr.Dataset(data, coords=coords, attrs=attrs)
    ds["init_time"].encoding.update(units="minutes since 1970-01-01", dtype="int64")  # one date or many alike
    # CF 2.4: time and latitude last, the other axes to their left
    return ds.transpose("variable", "lead_time", ..., "init_time", "lat", missing_dims="ignore")


SUM_PREFIXES = ("sum_", "block_")


def sums_of(scores: xr.Dataset) -> xr.Dataset:
    """The partial sums of a scores store (without its finished scores)."""
    keep = [v for v in scores.data_vars if str(v).startswith(SUM_PREFIXES)]
    if not keep:
        raise MismatchedSumsError(
            "the scores store holds no partial sums (written before they were kept); score it again"
        )
    out = scores[keep]
    drop = [c for c in out.coords if c not in {d for v in keep for d in scores[v].dims} | {"units", "draw_size"}]
    return out.drop_vars(drop)


__all__ = ["MismatchedSumsError", "check_same_sums", "sums_dataset", "sums_identity", "sums_of"]
