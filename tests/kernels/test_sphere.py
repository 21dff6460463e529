import numpy as np
import pytest
import torch

from swarmcast.kernels.sphere import (
    area_mean,
    equiangular_latitudes,
    grid_latitudes,
    lat_cell_area_weights,
    longitudes,
    quadrature_weights,
)


def test_equiangular_grid_runs_pole_to_pole():
    lat = equiangular_latitudes(5)
    np.testing.assert_allclose(lat, [90, 45, 0, -45, -90])
    np.testing.assert_allclose(longitudes(4), [0, 90, 180, 270])


def test_cell_weights_are_exact_band_areas():
    lat = np.array([90.0, 30.0, -30.0, -90.0])
    # bounds: 90 | 60 | 0 | -60 | -90 -> band areas ∝ differences of sin(bound)
    s = np.sin(np.deg2rad([90, 60, 0, -60, -90]))
    expected = -(np.diff(s))
    expected = expected / expected.mean()
    np.testing.assert_allclose(lat_cell_area_weights(lat), expected)


def test_cell_weights_do_not_depend_on_latitude_order():
    lat = equiangular_latitudes(9)
    np.testing.assert_allclose(lat_cell_area_weights(lat[::-1]), lat_cell_area_weights(lat)[::-1])


@pytest.mark.parametrize("grid", ["equiangular", "legendre-gauss"])
def test_quadrature_integrates_polynomials_in_sin_lat_exactly(grid):
    nlat = 17
    lat = np.deg2rad(grid_latitudes(nlat, grid))
    w = quadrature_weights(nlat, grid).numpy()
    # area means over the sphere: <sin^2> = 1/3, <sin^4> = 1/5, <sin> = 0
    assert np.mean(w * np.sin(lat) ** 2) == pytest.approx(1 / 3, abs=1e-12)
    assert np.mean(w * np.sin(lat) ** 4) == pytest.approx(1 / 5, abs=1e-12)
    assert np.mean(w * np.sin(lat)) == pytest.approx(0, abs=1e-12)


def test_area_mean_of_constant_is_constant():
    w = quadrature_weights(9)
    f = torch.full((2, 9, 16), 3.5, dtype=torch.float64)
    torch.testing.assert_close(area_mean(f, w), torch.full((2,), 3.5, dtype=torch.float64))


def test_bad_grids_are_refused():
    with pytest.raises(ValueError, match="unknown grid"):
        quadrature_weights(8, "healpix")
    with pytest.raises(ValueError, match="nlat"):
        equiangular_latitudes(1)
