"""Spatially correlated Gaussian random fields on the sphere, drawn in spectral space.

A field with a squared-exponential correlation of length ``L`` has angular power falling like
``exp(-l (l + 1) (L / R)^2 / 2)`` in total wavenumber ``l`` (the SPPT/HENS seed noise uses
L = 500 km). Coefficients are drawn from an explicit ``torch.Generator`` (so every member has
its own reproducible stream), synthesised with torch-harmonics' inverse real SHT, and the
field is scaled to unit variance at every point (the variance is isotropic by construction).

The length scale must be resolved by the grid: at L = 2 grid spacings the power left at the
truncation degree is ~1% of the largest (exp(-pi^2/2)), at L = 1 spacing ~30%, and the "correlated"
noise is white at the grid scale (a model then amplifies what it never saw in training).
``check_length_scale`` refuses L below ``MIN_SPACINGS`` spacings; ``auto_length_scale_m`` keeps
HENS's 500 km where the grid resolves it (0.25 degrees: 18 spacings) and otherwise uses
``AUTO_SPACINGS`` spacings, where the power at the truncation degree is ~1e-5 of the largest
(exp(-9 pi^2 / 8)): smooth at the grid scale, yet as local as the grid allows.
"""

from __future__ import annotations

import math

import torch

from swarmcast.kernels.harmonics import InverseRealSHT

EARTH_RADIUS_M = 6.371e6
HENS_LENGTH_SCALE_M = 5.0e5
"""The seed-noise correlation length of HENS (Mahesh et al. 2024) at 0.25 degrees."""
MIN_SPACINGS = 2.0
AUTO_SPACINGS = 3.0


def grid_spacing_m(nlat: int, nlon: int, *, radius_m: float = EARTH_RADIUS_M) -> float:
    """The coarsest spacing of an equiangular grid with poles (m): max(pi R / (nlat - 1), 2 pi R / nlon)."""
    return max(math.pi * radius_m / max(nlat - 1, 1), 2 * math.pi * radius_m / nlon)


def auto_length_scale_m(nlat: int, nlon: int) -> float:
    """HENS's 500 km, or ``AUTO_SPACINGS`` grid spacings where the grid is too coarse for it (m)."""
    return max(HENS_LENGTH_SCALE_M, AUTO_SPACINGS * grid_spacing_m(nlat, nlon))


def check_length_scale(length_scale_m: float, nlat: int, nlon: int) -> None:
    """Raise ``ValueError`` for a length scale below ``MIN_SPACINGS`` grid spacings, naming both."""
    spacing = grid_spacing_m(nlat, nlon)
    if length_scale_m < MIN_SPACINGS * spacing:
        raise ValueError(
            f"a correlation length of {length_scale_m / 1e3:.0f} km is below {MIN_SPACINGS:g} grid spacings of "
            f"the {nlat} x {nlon} grid ({MIN_SPACINGS:g} x {spacing / 1e3:.0f} km = "
            f"{MIN_SPACINGS * spacing / 1e3:.0f} km): the noise would be white at the grid scale. Use at least "
            f"{MIN_SPACINGS * spacing / 1e3:.0f} km, or 'auto' ({auto_length_scale_m(nlat, nlon) / 1e3:.0f} km here)"
        )


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
