import numpy as np
import pytest
import torch
import torch_harmonics as th

from swarmcast.kernels.losses import area_weighted_mse, area_weighted_sse_per_channel, spectral_error_ratio
from swarmcast.kernels.spectra import default_lmax
from swarmcast.kernels.sphere import equiangular_latitudes, quadrature_weights


def test_area_weighted_mse_matches_the_spherical_integral():
    nlat, nlon = 17, 8
    lat = torch.as_tensor(np.deg2rad(equiangular_latitudes(nlat)))
    err = torch.sin(lat).reshape(1, 1, -1, 1).expand(2, 3, nlat, nlon)  # error field sin(lat)
    w = quadrature_weights(nlat)
    # area mean of sin^2(lat) over the sphere is 1/3 (an unweighted mean would not be)
    assert float(area_weighted_mse(err, torch.zeros_like(err), w)) == pytest.approx(1 / 3, abs=1e-6)
    assert float((err**2).mean()) != pytest.approx(1 / 3, abs=1e-2)


def test_sse_per_channel_sums_per_sample_area_means():
    w = quadrature_weights(5)
    pred = torch.zeros(4, 2, 5, 6)
    target = torch.ones(4, 2, 5, 6) * torch.tensor([1.0, 3.0]).reshape(1, 2, 1, 1)
    sse = area_weighted_sse_per_channel(pred, target, w)
    torch.testing.assert_close(sse, torch.tensor([4.0, 36.0], dtype=torch.float64))


def _harmonics(amplitudes: dict[tuple[int, int], float], nlat: int = 32, nlon: int = 64) -> torch.Tensor:
    lmax = default_lmax(nlat)
    coeffs = torch.zeros(lmax, lmax, dtype=torch.complex64)
    for (degree, order), amplitude in amplitudes.items():
        coeffs[degree, order] = amplitude
    return th.InverseRealSHT(nlat, nlon, lmax=lmax, mmax=lmax, norm="ortho")(coeffs)


def test_spectral_error_ratio_is_one_for_persistence_and_weighs_every_degree_alike():
    # a true step with power at every degree, falling 10-fold every 10 degrees (as tendencies do)
    amplitude = {(degree, degree // 2): 10 ** (-degree / 20) for degree in range(16)}
    previous = torch.zeros(3, 2, 32, 64)
    target = previous + _harmonics(amplitude)
    assert float(spectral_error_ratio(previous, target, previous)) == pytest.approx(1.0, rel=1e-2)
    assert float(spectral_error_ratio(target, target, previous)) == 0.0
    # noise at degree 12 as strong as the true step there: the area MSE hardly sees it (under 2%
    # of persistence's), the ratio counts it as one degree of 15 (1 to 15) as bad as persistence
    noisy = target + _harmonics({(12, 9): amplitude[(12, 6)]})
    w = quadrature_weights(32)
    assert float(area_weighted_mse(noisy, target, w) / area_weighted_mse(previous, target, w)) < 0.02
    assert float(spectral_error_ratio(noisy, target, previous)) == pytest.approx(1 / 15, rel=1e-2)
    pred = noisy.clone().requires_grad_(True)  # a training loss: gradients reach the prediction
    spectral_error_ratio(pred, target, previous).backward()
    assert pred.grad is not None and float(pred.grad.abs().sum()) > 0
