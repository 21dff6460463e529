import numpy as np
import pytest
import torch

from swarmcast.kernels.hemispheric import hemispheric_rescale, hemispheric_rms
from swarmcast.kernels.random_fields import (
    EARTH_RADIUS_M,
    auto_length_scale_m,
    check_length_scale,
    correlated_field,
    grid_spacing_m,
)
from swarmcast.kernels.sphere import equiangular_latitudes, quadrature_weights


def test_correlated_fields_have_unit_variance_and_grow_smoother_with_length():
    w = quadrature_weights(33).reshape(-1, 1)
    short = correlated_field(torch.Generator().manual_seed(0), 300, 33, 64, 5e5)
    long = correlated_field(torch.Generator().manual_seed(0), 300, 33, 64, 2e6)
    for f in (short, long):
        assert float((f.double() ** 2 * w).mean()) == pytest.approx(1.0, abs=0.05)
        assert abs(float(f.mean())) < 0.05

    def neighbour_corr(x):
        return float((x[..., 1:] * x[..., :-1]).mean() / (x**2).mean())

    assert neighbour_corr(long) > neighbour_corr(short) > 0.5


def test_correlated_fields_are_reproducible_per_generator():
    a = correlated_field(torch.Generator().manual_seed(5), 2, 9, 16, 5e5)
    b = correlated_field(torch.Generator().manual_seed(5), 2, 9, 16, 5e5)
    c = correlated_field(torch.Generator().manual_seed(6), 2, 9, 16, 5e5)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_rescaled_field_has_the_target_rms_in_each_extratropical_hemisphere():
    nlat, nlon = 37, 16
    lat = torch.as_tensor(equiangular_latitudes(nlat))
    w = quadrature_weights(nlat)
    field = torch.randn(4, 2, nlat, nlon, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    field[:, :, lat < 0] *= 7.0  # very different hemispheres
    target = torch.tensor([3.0, 0.5], dtype=torch.float64)
    out = hemispheric_rescale(field, target, lat, w)
    north, south = hemispheric_rms(out, lat, w)
    torch.testing.assert_close(north, target.expand(4, 2))
    torch.testing.assert_close(south, target.expand(4, 2))


def test_tropical_factor_blends_linearly():
    nlat = 19  # 10-degree spacing: rows at 20, 10, 0, -10, -20
    lat = torch.as_tensor(equiangular_latitudes(nlat))
    w = quadrature_weights(nlat)
    field = torch.ones(1, 1, nlat, 4, dtype=torch.float64)
    field[..., lat < 0, :] = 4.0  # north RMS 1 -> factor 2; south RMS 4 -> factor 0.5
    out = hemispheric_rescale(field, torch.tensor([2.0], dtype=torch.float64), lat, w)
    factor = (out / field)[0, 0, :, 0].numpy()
    by_lat = dict(zip(np.round(lat.numpy()).astype(int).tolist(), factor.tolist(), strict=True))
    assert by_lat[90] == pytest.approx(2.0) and by_lat[20] == pytest.approx(2.0)
    assert by_lat[-20] == pytest.approx(0.5) and by_lat[-90] == pytest.approx(0.5)
    assert by_lat[0] == pytest.approx(1.25) and by_lat[10] == pytest.approx(1.625)


def test_zero_channel_stays_zero():
    lat = torch.as_tensor(equiangular_latitudes(9))
    out = hemispheric_rescale(torch.zeros(1, 1, 9, 4), torch.tensor([1.0]), lat, quadrature_weights(9))
    assert torch.equal(out, torch.zeros_like(out))


def test_grid_spacing_and_the_automatic_length_scale():
    # 0.25 degrees (721 x 1440): 27.8 km, so HENS's 500 km (18 spacings) is kept
    assert grid_spacing_m(721, 1440) == pytest.approx(np.pi * EARTH_RADIUS_M / 720)
    assert auto_length_scale_m(721, 1440) == 5.0e5
    # the demo's 32 x 64: rows pi R / 31 = 646 km apart, so 3 spacings = 1937 km
    assert auto_length_scale_m(32, 64) == pytest.approx(3 * np.pi * EARTH_RADIUS_M / 31)
    check_length_scale(2.01 * grid_spacing_m(32, 64), 32, 64)
    with pytest.raises(
        ValueError, match=r"500 km is below 2 grid spacings of the 32 x 64 grid \(2 x 646 km = 1291 km\)"
    ):
        check_length_scale(5.0e5, 32, 64)


def test_at_two_spacings_the_noise_keeps_about_one_percent_of_its_power_at_the_truncation():
    # the power law the module docstring gives: exp(-l (l + 1) (L / R)^2 / 2) at l = lmax
    nlat, nlon = 33, 64
    lmax = (nlat + 1) // 2 - 1
    for spacings, most in ((2.0, 0.02), (3.0, 1e-4)):
        ratio = (spacings * grid_spacing_m(nlat, nlon) / EARTH_RADIUS_M) ** 2
        assert np.exp(-lmax * (lmax + 1) * ratio / 2) < most
