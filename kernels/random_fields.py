"""Spatially correlated Gaussian random fields on the sphere, drawn in spectral space.

A field with a squared-exponential correlation of length ``L`` has angular power falling like
``exp(-l (l + 1) (L / R)^2 / 2)`` in total wavenumber ``l`` (the SPPT/HENS seed noise uses
L = 500 km). Coefficients are drawn from an explicit ``torch.Generator`` (so every member has
its own reproducible stream), synthesised with torch-harmonics' inverse real SHT, and the
field is scaled to unit variance at every point (the variance is isotropic by construction).
"""

from __future__ import annotations

import torch
from torch_harmonics import InverseRealSHT

EARTH_RADIUS_M = 6.371e6


def correlated_field(
    generator: torch.Generator,
    n: int,
    nlat: int,
    nlon: int,
    length_scale_m: float,
    *,
    radius_m: float = EARTH_RADIUS_M,
) -> torch.Tensor:
    """``n`` unit-variance fields on the equiangular grid, float32 (n, nlat, nlon)."""
    lmax = (nlat + 1) // 2
    mmax = min(lmax, nlon // 2 + 1)
    ell = torch.arange(lmax, dtype=torch.float64).reshape(-1, 1)
    power = torch.exp(-ell * (ell + 1) * (length_scale_m / radius_m) ** 2 / 2)
    power[0] = 0.0  # no global-mean offset: a perturbation, not a bias
    # grid variance = sum_l (2l + 1) / (4 pi) * power_l for an isotropic field
    variance = ((2 * ell[:, 0] + 1) / (4 * torch.pi) * power[:, 0]).sum()
    amp = torch.sqrt(power / variance)
    real = torch.randn(n, lmax, mmax, generator=generator, dtype=torch.float64)
    imag = torch.randn(n, lmax, mmax, generator=generator, dtype=torch.float64)
    coeffs = torch.complex(real, imag) * amp / (2**0.5)
    coeffs[..., 0] = coeffs[..., 0].real * (2**0.5)  # m = 0 coefficients are real
    coeffs = torch.tril(coeffs)  # only m <= l exist
    isht = InverseRealSHT(nlat, nlon, lmax=lmax, mmax=mmax, grid="equiangular", csphase=False).double()
    return isht(coeffs).float()
