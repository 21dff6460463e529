import numpy as np
import pytest
import torch

from swarmcast.kernels.losses import area_weighted_mse, area_weighted_sse_per_channel
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
