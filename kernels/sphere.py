"""Grids and area weights on the sphere.

Latitudes are in degrees north, longitudes in degrees east. Two weightings are offered:

* ``lat_cell_area_weights`` -- the cell-bound form used by WeatherBench2
  (``w_i ∝ sin φ_{i+½} − sin φ_{i−½}``, bounds at midpoints and ±90° at the ends), valid for
  any latitude vector in either order;
* ``quadrature_weights`` -- the quadrature of the grid the data lives on (Clenshaw–Curtis for
  the equiangular grid with poles, Gauss–Legendre for Gaussian grids), via torch-harmonics.
  Integrals of band-limited fields are exact with these, which is what conservation checks
  and spherical losses need.

Both are normalised to mean 1 over latitude, so ``(w[:, None] * f).mean()`` is an area mean.
"""

from __future__ import annotations

import numpy as np
import torch

from swarmcast.kernels.harmonics import quadrature

GRIDS = ("equiangular", "legendre-gauss")


def equiangular_latitudes(nlat: int) -> np.ndarray:
    """Latitudes of the equiangular grid with both poles, 90 -> -90 degrees, shape (nlat,)."""
    if nlat < 2:
        raise ValueError(f"an equiangular grid needs nlat >= 2, got {nlat}")
    return np.linspace(90.0, -90.0, nlat)


def grid_latitudes(nlat: int, grid: str = "equiangular") -> np.ndarray:
    """Latitudes (degrees north, north first) of ``grid``, shape (nlat,)."""
    if grid == "equiangular":
        return equiangular_latitudes(nlat)
    if grid == "legendre-gauss":
        cost, _ = quadrature.legendre_gauss_weights(nlat, -1, 1)
        return np.rad2deg(-np.arcsin(np.asarray(cost, dtype=np.float64)))
    raise ValueError(f"unknown grid {grid!r}; expected one of {GRIDS}")


def longitudes(nlon: int) -> np.ndarray:
    """Longitudes 0 <= lon < 360 degrees east, equally spaced, shape (nlon,)."""
    if nlon < 1:
        raise ValueError(f"nlon must be >= 1, got {nlon}")
    return np.arange(nlon) * (360.0 / nlon)


def lat_cell_area_weights(lat_deg: np.ndarray) -> np.ndarray:
    """Area weights of latitude rows from cell bounds, mean 1, shape (nlat,).

    The bounds are midpoints between rows and ±90° at the ends, so pole rows get a small,
    non-zero weight (unlike ``cos φ``). Works for ascending or descending ``lat_deg``.
    """
    lat = np.asarray(lat_deg, dtype=np.float64)
    if lat.ndim != 1 or lat.size < 2:
        raise ValueError("lat_deg must be a 1-D array with at least two latitudes")
    order = np.argsort(lat)
    s = lat[order]
    bounds = np.concatenate([[-90.0], 0.5 * (s[1:] + s[:-1]), [90.0]])
    w_sorted = np.sin(np.deg2rad(bounds[1:])) - np.sin(np.deg2rad(bounds[:-1]))
    w = np.empty_like(w_sorted)
    w[order] = w_sorted
    return w / w.mean()


def quadrature_weights(nlat: int, grid: str = "equiangular") -> torch.Tensor:
    """Quadrature weights of the grid's latitudes (north first), mean 1, float64, shape (nlat,)."""
    if grid == "equiangular":
        _, w = quadrature.clenshaw_curtiss_weights(nlat, -1, 1)
    elif grid == "legendre-gauss":
        _, w = quadrature.legendre_gauss_weights(nlat, -1, 1)
    else:
        raise ValueError(f"unknown grid {grid!r}; expected one of {GRIDS}")
    w = torch.as_tensor(np.asarray(w), dtype=torch.float64)
    return w / w.mean()


def area_mean(field: torch.Tensor, lat_weights: torch.Tensor) -> torch.Tensor:
    """Area-weighted mean over the last two dims (lat, lon) of ``field`` (..., nlat, nlon)."""
    w = lat_weights.to(field.dtype).reshape(-1, 1)
    return (field * w).mean(dim=(-2, -1))
