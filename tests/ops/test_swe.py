import numpy as np
import pytest

from swarmcast.ops.data.swe import SWEConfig, integrals, simulate


def _run(cfg: SWEConfig, k: int = 0) -> np.ndarray:
    return np.concatenate([f for _, f in simulate(cfg, trajectories=[k])])


@pytest.fixture(scope="module")
def trajectory():
    cfg = SWEConfig(nlat=32, nlon=64, trajectories=1, days=8, spinup_days=1)
    return cfg, _run(cfg)


def test_physically_sane(trajectory):
    cfg, f = trajectory
    assert f.shape == (cfg.snapshots_per_trajectory, 4, 32, 64)
    assert np.isfinite(f).all()
    totals = integrals(cfg, f)
    # total mass: the l=0 mode of h has no tendency; float32 output limits the check
    assert np.abs(totals["mass"] / totals["mass"][0] - 1).max() < 1e-6
    # energy: only hyperdiffusion removes energy; it must neither grow nor collapse
    ratio = totals["energy"] / totals["energy"][0]
    assert ratio.max() < 1 + 1e-5 and ratio.min() > 0.99


def test_balanced_start_gives_weather_like_tendencies(trajectory):
    _, f = trajectory
    h = f[:, 0]
    assert np.diff(h, axis=0).std() < 0.5 * h.std()
    # winds of the nominal strength: RMS about mach * sqrt(g H) ~ 19 m/s
    rms = np.sqrt((f[:, 1] ** 2 + f[:, 2] ** 2).mean())
    assert 5 < rms < 40


def test_deterministic_and_seed_dependent():
    cfg = SWEConfig(nlat=8, nlon=16, trajectories=2, days=1, spinup_days=0)
    a, b = _run(cfg, 1), _run(cfg, 1)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, _run(cfg, 0))
    other = SWEConfig(nlat=8, nlon=16, trajectories=2, days=1, spinup_days=0, seed=1)
    assert not np.array_equal(a, _run(other, 1))


def test_times_lay_trajectories_as_consecutive_years():
    cfg = SWEConfig(trajectories=3, days=1, output_step_hours=12)
    t = cfg.times()
    assert len(t) == cfg.n_times == 9
    assert t[0] == np.datetime64("2000-01-01T00") and t[2] == np.datetime64("2000-01-02T00")
    assert t[3] == np.datetime64("2001-01-01T00") and t[-1] == np.datetime64("2002-01-02T00")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"nlon": 33}, "nlon must be even"),
        ({"days": 400}, "days must be in"),
        ({"channels": ("h", "z500")}, "unknown shallow-water channels"),
        ({"solver_step_seconds": 7000.0}, "must divide the output step"),
        ({"mach": 1.5}, "mach"),
    ],
)
def test_impossible_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SWEConfig(**kwargs)


def test_automatic_solver_step_divides_output_and_shrinks_with_resolution():
    coarse, fine = SWEConfig(nlat=32, nlon=64), SWEConfig(nlat=256, nlon=512)
    for c in (coarse, fine):
        assert (c.output_step_hours * 3600) % c.solver_step() == 0
    assert fine.solver_step() < coarse.solver_step()
