"""Shared conformance suite every perturbation passes, plus bred-vector specifics."""

import numpy as np
import pytest
import torch

from swarmcast.kernels.hemispheric import hemispheric_rms
from swarmcast.kernels.random_fields import grid_spacing_m
from swarmcast.kernels.sphere import equiangular_latitudes, quadrature_weights
from swarmcast.ops.perturbations import (
    BredVector,
    Control,
    CorrelatedNoise,
    GaussianNoise,
    Member,
    Perturbation,
    member_seed,
    plan_members,
)

NLAT, NLON, C = 17, 32, 3
TARGET = [1.0, 2.0, 0.5]


def step(x: torch.Tensor) -> torch.Tensor:
    """A nonlinear, spatially coupling 'model' that treats each batch row alone."""
    return x + 0.3 * torch.tanh(torch.roll(x, 1, dims=-1)) - 0.1 * torch.roll(x, 1, dims=1)


def history(steps: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(42)
    base = torch.randn(C, NLAT, NLON, generator=g) * 3 + 10
    return torch.stack([base + 0.1 * i for i in range(steps + 1)])


KINDS = {
    "control": lambda: Control(),
    "gaussian": lambda: GaussianNoise(TARGET),
    "correlated": lambda: CorrelatedNoise(TARGET, length_scale_m=3e6),
    "bred": lambda: BredVector(TARGET, [True, False, False], cycles=3),
}
MEMBERS = [Member(0, 0, 0), Member(1, 1, 101), Member(1, -1, 101), Member(2, 1, 202), Member(2, -1, 202)]


@pytest.fixture(params=list(KINDS))
def kind(request):
    return request.param, KINDS[request.param]()


def make(p, members=MEMBERS):
    return p(history(p.history_steps), members, step)


def test_conforms_to_the_protocol_and_shapes(kind):
    _, p = kind
    assert isinstance(p, Perturbation)
    out = make(p)
    assert out.shape == (len(MEMBERS), C, NLAT, NLON) and torch.isfinite(out).all()


def test_deterministic_and_each_member_regenerates_alone(kind):
    _, p = kind
    batch = make(p)
    assert torch.equal(batch, make(p))
    for i, m in enumerate(MEMBERS):
        assert torch.equal(make(p, [m])[0], batch[i]), m


def test_control_member_is_the_analysis(kind):
    _, p = kind
    assert torch.equal(make(p)[0], history(p.history_steps)[-1])


def test_pairs_are_centred_on_the_analysis(kind):
    _, p = kind
    out = make(p)
    x0 = history(p.history_steps)[-1]
    torch.testing.assert_close((out[1] + out[2]) / 2, x0, rtol=0, atol=1e-5)
    torch.testing.assert_close((out[3] + out[4]) / 2, x0, rtol=0, atol=1e-5)


def test_different_seeds_differ(kind):
    name, p = kind
    out = make(p)
    if name == "control":
        assert torch.equal(out[1], out[3])
    else:
        assert not torch.equal(out[1], out[3])


@pytest.mark.parametrize("cls", [GaussianNoise, CorrelatedNoise])
def test_nonnegative_channels_are_clipped(cls):
    p = cls([5.0, 5.0, 5.0], nonnegative=[True, False, False])
    h = torch.zeros(1, C, NLAT, NLON)
    out = p(h, MEMBERS[1:])
    assert (out[:, 0] >= 0).all() and (out[:, 1] < 0).any()


def test_gaussian_amplitude_per_channel():
    out = GaussianNoise([1.0, 2.0, 0.5])(torch.zeros(1, C, 64, 128), [Member(0, 1, 7)])
    for c, a in enumerate([1.0, 2.0, 0.5]):
        assert float(out[0, c].std()) == pytest.approx(a, rel=0.03)


def test_bred_vector_has_the_target_hemispheric_rms_in_every_channel():
    p = BredVector(TARGET, [True, False, False], cycles=3)
    out = make(p)
    dx = out[1] - history(3)[-1]
    lat = torch.as_tensor(equiangular_latitudes(NLAT), dtype=torch.float32)
    north, south = hemispheric_rms(dx, lat, quadrature_weights(NLAT))
    torch.testing.assert_close(north, torch.tensor(TARGET), rtol=1e-4, atol=0)
    torch.testing.assert_close(south, torch.tensor(TARGET), rtol=1e-4, atol=0)


def test_bred_vector_converges_to_the_leading_growth_direction_of_a_linear_model():
    """Breeding is a power iteration: with x -> x + (lam - 1) <x, v> v / |v|^2 only the
    component along v grows, so the bred vector turns into v (v is symmetric about the
    equator, so the hemispheric rescaling does not bend it)."""
    lat = torch.as_tensor(equiangular_latitudes(NLAT), dtype=torch.float32)
    lon = torch.arange(NLON) * (2 * torch.pi / NLON)
    v = (torch.cos(torch.deg2rad(lat))[:, None] ** 2 * torch.cos(2 * lon)[None]).expand(1, NLAT, NLON)
    v = torch.cat([v, 0.5 * v])  # two channels
    lam = 3.0

    def linear(x):
        coef = (x * v).sum(dim=(-3, -2, -1), keepdim=True) / (v * v).sum()
        return x + (lam - 1) * coef * v

    p = BredVector([1.0, 0.5], [True, True], cycles=12)
    h = torch.zeros(13, 2, NLAT, NLON)
    dx = p(h, [Member(0, 1, 3)], linear)[0]
    cosine = float((dx * v).sum() / (dx.norm() * v.norm()))
    assert abs(cosine) > 0.999  # a direction: its sign comes from the seed noise
    # the seed noise alone is nearly orthogonal to v: breeding did the turning
    seed_only = BredVector([1.0, 0.5], [True, True], cycles=1)(h[:2], [Member(0, 1, 3)], lambda x: x)[0]
    assert abs(float((seed_only * v).sum() / (seed_only.norm() * v.norm()))) < 0.5


def test_bred_vector_breeds_in_one_model_call_per_cycle_with_the_same_result():
    """The control and the perturbed states of a cycle go through the model together (one batch
    of pairs + 1), and the vectors equal breeding them in separate calls."""
    batches = []

    def counting(x):
        batches.append(len(x))
        return step(x)

    p = BredVector(TARGET, [True, False, False], cycles=3)
    batched = p(history(3), MEMBERS, counting)
    assert batches == [3, 3, 3]  # 2 distinct pairs + the control, once per cycle
    separate = p(history(3), MEMBERS, lambda x: torch.cat([step(row[None]) for row in x]))
    torch.testing.assert_close(batched, separate, rtol=0, atol=0)


def test_bred_vector_input_errors():
    with pytest.raises(ValueError, match="cycles >= 1"):
        BredVector(TARGET, [True, False, False], cycles=0)
    with pytest.raises(ValueError, match="at least one seed channel"):
        BredVector(TARGET, [False, False, False])
    p = BredVector(TARGET, [True, False, False], cycles=3)
    with pytest.raises(ValueError, match="need 4 history states, got 2"):
        p(history(1), MEMBERS, step)
    with pytest.raises(ValueError, match="need the model step"):
        p(history(3), MEMBERS)
    with pytest.raises(ValueError, match="must share one seed"):
        p(history(3), [Member(1, 1, 5), Member(1, -1, 6)], step)
    with pytest.raises(ValueError, match="sign must be"):
        Member(0, 2, 0)


def test_member_plan_control_then_pairs_with_shared_seeds():
    t = np.datetime64("2023-06-01T00")
    members = plan_members(7, t, "seed-0", pairs=2)
    assert [(m.index, m.sign) for m in members] == [(0, 0), (1, 1), (1, -1), (2, 1), (2, -1)]
    assert members[1].seed == members[2].seed != members[3].seed == members[4].seed
    assert members[3].seed == member_seed(7, t, "seed-0", 2)
    # every ingredient of the seed matters
    assert member_seed(7, t, "seed-0", 2) != member_seed(8, t, "seed-0", 2)
    assert member_seed(7, t, "seed-0", 2) != member_seed(7, t + np.timedelta64(6, "h"), "seed-0", 2)
    assert member_seed(7, t, "seed-0", 2) != member_seed(7, t, "seed-1", 2)
    assert 0 <= member_seed(7, t, "seed-0", 2) < 2**63
    assert [(m.index, m.sign) for m in plan_members(7, t, "c", 1, control=False)] == [(1, 1), (1, -1)]
    with pytest.raises(ValueError, match="control member or at least one pair"):
        plan_members(7, t, "c", 0, control=False)


def test_a_correlation_length_the_grid_cannot_resolve_is_refused_and_none_picks_one():
    # 17 x 32 grid: pi R / 16 = 2 pi R / 32 = 1251 km, so 2 spacings = 2502 km
    with pytest.raises(ValueError, match=r"2000 km is below 2 grid spacings of the 17 x 32 grid .*2502 km"):
        make(CorrelatedNoise(TARGET, length_scale_m=2e6))
    with pytest.raises(ValueError, match="below 2 grid spacings"):
        make(BredVector(TARGET, [True, False, False], cycles=1, length_scale_m=5e5))
    auto, explicit = CorrelatedNoise(TARGET), CorrelatedNoise(TARGET, length_scale_m=3 * grid_spacing_m(NLAT, NLON))
    assert torch.equal(make(auto), make(explicit))  # None: 3 spacings on this grid
