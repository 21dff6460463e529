"""Angular power spectra: closed forms (Legendre polynomial, Parseval) and white noise."""

from __future__ import annotations

import numpy as np
import torch
import torch_harmonics as th

from swarmcast.kernels.spectra import angular_power_spectrum, default_lmax
from swarmcast.kernels.sphere import equiangular_latitudes, quadrature_weights

NLAT, NLON = 32, 64


def test_legendre_p2_has_all_power_at_degree_two():
    lat = np.deg2rad(equiangular_latitudes(NLAT))
    p2 = 0.5 * (3 * np.sin(lat) ** 2 - 1)
    field = torch.as_tensor(np.repeat(p2[:, None], NLON, axis=1))
    c = angular_power_spectrum(field)
    assert c.argmax() == 2
    assert c[2] * 5 > 0.999 * (c * (2 * torch.arange(len(c)) + 1)).sum()
    # Parseval: mean of f^2 over the sphere (quadrature) = sum (2l+1) C_l / (4 pi)
    w = quadrature_weights(NLAT)[:, None]
    mean_sq = (w * field**2).mean()
    total = (c * (2 * torch.arange(len(c)) + 1)).sum() / (4 * np.pi)
    assert torch.isclose(mean_sq, total, rtol=1e-10)


def test_single_sectoral_harmonic_sits_at_its_degree():
    lmax = default_lmax(NLAT)
    coeffs = torch.zeros(lmax, lmax, dtype=torch.complex128)
    coeffs[7, 3] = 1.0
    field = th.InverseRealSHT(NLAT, NLON, lmax=lmax, mmax=lmax, norm="ortho").double()(coeffs)
    c = angular_power_spectrum(field)
    assert c.argmax() == 7
    np.testing.assert_allclose(c[7].item(), 2 / 15, rtol=1e-10)  # 2|a|^2 / (2l+1)
    assert (c[torch.arange(lmax) != 7] < 1e-20).all()


def test_white_noise_spectrum_is_flat():
    gen = torch.Generator().manual_seed(0)
    # pointwise white noise on the grid: every degree carries about the same power per mode
    noise = torch.randn(200, NLAT, NLON, generator=gen, dtype=torch.float64)
    c = angular_power_spectrum(noise).mean(dim=0)
    assert (c[1:] / c[1:].mean() - 1).abs().max() < 0.15
    # and a 1/l^2 field is far from flat, so the check above can fail
    red = angular_power_spectrum(torch.cumsum(torch.cumsum(noise, dim=-1), dim=-2)).mean(dim=0)
    assert red[1] / red[-1] > 100
