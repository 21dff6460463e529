"""Angular power spectra of fields on the sphere, through torch-harmonics' real SHT.

With orthonormal spherical harmonics (``norm="ortho"``) a real field is
f = sum_{l, m} a_lm Y_lm, and the angular power spectrum is

    C_l = (|a_l0|^2 + 2 sum_{m >= 1} |a_lm|^2) / (2 l + 1)      (units of f squared)

(the real SHT stores only m >= 0; m > 0 counts twice for the -m partner). White noise has a
flat C_l; a single harmonic of degree l0 puts all its power at l0. Parseval:
integral over the sphere of f^2 = sum_l (2 l + 1) C_l, so the global mean of f^2 is that sum
divided by 4 pi. Makani/HENS plot sum_m |a_lm|^2 (without the 1/(2l+1)); multiply by
``2 l + 1`` to get theirs.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from swarmcast.kernels.harmonics import th


@lru_cache(maxsize=8)
def _sht(nlat: int, nlon: int, grid: str, lmax: int, dtype: torch.dtype = torch.float64) -> th.RealSHT:
    return th.RealSHT(nlat, nlon, lmax=lmax, mmax=lmax, grid=grid, norm="ortho").to(dtype)


def default_lmax(nlat: int, grid: str = "equiangular") -> int:
    """Degrees resolved without aliasing: (nlat + 1) // 2 on equiangular grids, nlat on Gaussian."""
    return nlat if grid == "legendre-gauss" else (nlat + 1) // 2


def angular_power_spectrum(
    field: torch.Tensor, grid: str = "equiangular", lmax: int | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """C_l of ``field`` (..., nlat, nlon), latitudes north first; returns ``dtype`` (..., lmax).

    Differentiable; ``dtype=torch.float32`` is what a training loss uses (float64 is for scores).
    """
    if field.ndim < 2:
        raise ValueError("field needs (lat, lon) as its last two dims")
    nlat, nlon = field.shape[-2:]
    lmax = lmax or default_lmax(nlat, grid)
    coeffs = _sht(nlat, nlon, grid, lmax, dtype).to(field.device)(field.to(dtype))  # (..., lmax, mmax)
    power = coeffs.abs() ** 2
    per_degree = power[..., 0] + 2 * power[..., 1:].sum(dim=-1)
    degrees = torch.arange(lmax, dtype=dtype, device=field.device)
    return per_degree / (2 * degrees + 1)


__all__ = ["angular_power_spectrum", "default_lmax"]
