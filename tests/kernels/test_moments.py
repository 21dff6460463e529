import numpy as np
import pytest

from swarmcast.kernels.moments import Moments


def test_merging_random_splits_equals_brute_force():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(1000, 3)) * np.array([1.0, 1e3, 1e-3])
    cuts = np.sort(rng.choice(np.arange(1, 1000), size=7, replace=False))
    m = Moments.empty((3,))
    for part in np.split(x, cuts):
        m = m.merge(Moments.of(part))
    assert m.count == 1000
    np.testing.assert_allclose(m.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(m.variance(), x.var(axis=0), rtol=1e-10)
    np.testing.assert_allclose(m.variance(ddof=1), x.var(axis=0, ddof=1), rtol=1e-10)


def test_merge_is_order_independent_and_handles_empties():
    rng = np.random.default_rng(1)
    a, b = Moments.of(rng.normal(size=(10, 2))), Moments.of(rng.normal(size=(5, 2)))
    ab, ba = a.merge(b), b.merge(a)
    np.testing.assert_allclose(ab.mean, ba.mean)
    np.testing.assert_allclose(ab.m2, ba.m2)
    e = Moments.empty((2,))
    assert e.merge(a) is a and a.merge(e) is a


def test_reduction_over_several_axes():
    x = np.arange(24, dtype=float).reshape(2, 3, 4)
    m = Moments.of(x, axis=(0, 2))
    np.testing.assert_allclose(m.mean, x.mean(axis=(0, 2)))
    np.testing.assert_allclose(m.std(), x.std(axis=(0, 2)))


def test_variance_needs_enough_samples():
    with pytest.raises(ValueError, match="more than 1"):
        Moments.of(np.ones((1, 2))).variance(ddof=1)
