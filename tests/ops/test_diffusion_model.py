"""Diffusion objectives, preconditioning, EMA, curriculum and exact resume, against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from swarmcast.kernels.diffusion import NoisePath, edm_coefficients, loss_weight
from swarmcast.ops.checkpoint import load_training_state, save_training_state
from swarmcast.ops.diffusion.model import Curriculum, DenoisingLoss, DiffusionModel, DiffusionSpec, ema_decay
from swarmcast.ops.diffusion.training import diffusion_train_step, generate, load_diffusion, save_diffusion
from swarmcast.ops.optim import OptimConfig, make_optimizer


@pytest.mark.parametrize("kind", ["edm", "linear", "trig"])
@pytest.mark.parametrize("gamma", [0.0, 0.5])
def test_noise_level_inverse_round_trips(kind, gamma):
    path = NoisePath(kind, 0.01, 50.0, gamma)
    lo, hi = path.t_range()
    t = torch.linspace(lo, hi, 9, dtype=torch.float64)
    torch.testing.assert_close(path.t_of_s(path.s_of_t(t)), t, atol=1e-7, rtol=0)
    torch.testing.assert_close(
        path.s_of_t(torch.tensor([lo, hi], dtype=torch.float64)),
        torch.tensor([0.01, 50.0], dtype=torch.float64),
        rtol=1e-5,  # EDM with latent noise stays 1e-6 above sigma_min even at t = 0
        atol=0,
    )


@pytest.mark.parametrize("kind", ["linear", "trig"])
def test_velocity_weight_is_the_velocity_error(kind):
    """||v_hat - v||^2 computed directly equals w(t) ||D - x0||^2 (alpha-scaled frame)."""
    path = NoisePath(kind, 0.01, 50.0, gamma=0.3)
    g = torch.Generator().manual_seed(0)
    x0, z, d = (torch.randn(5, 7, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.full((5,), 0.37, dtype=torch.float64)
    alpha, sigma, da, ds = (c[:, None] for c in path.coefficients(t))
    s = sigma / alpha
    z_hat = (x0 + s * z - d) / s
    v_hat, v = da * d + ds * z_hat, da * x0 + ds * z
    direct = ((v_hat - v) ** 2).sum(1)
    weighted = loss_weight("velocity", path, t, 1.0) * ((d - x0) ** 2).sum(1)
    torch.testing.assert_close(direct, weighted)
    noise = loss_weight("noise", path, t, 1.0) * ((d - x0) ** 2).sum(1)
    torch.testing.assert_close(noise, ((z_hat - z) ** 2).sum(1))


def test_edm_preconditioning_with_a_zero_network_is_the_exact_gaussian_denoiser():
    """For x0 ~ N(0, sd^2) the optimal denoiser is sd^2/(sd^2+s^2) x = c_skip x, so a fresh
    model (output layer zero) attains the closed-form minimum loss sd^2 s^2 / (sd^2 + s^2)."""
    sd = 0.5
    spec = DiffusionSpec("unet", 1, 8, 8, sigma_data=sd, prediction="denoiser")
    model = DiffusionModel(spec)
    g = torch.Generator().manual_seed(1)
    x0 = sd * torch.randn(4000, 1, 8, 8, generator=g)
    loss = DenoisingLoss(model.denoiser, spec)
    s = 0.8
    u = torch.full((4000,), 0.5)
    t = loss.levels(u)
    s_actual = float(spec.noise_path().s_of_t(t[:1].double()))
    with torch.no_grad():
        got = float(loss(x0, None, u, torch.randn(x0.shape, generator=g)))
    assert got == pytest.approx(sd**2 * s_actual**2 / (sd**2 + s_actual**2), rel=0.02)
    c_skip, c_out, c_in, _ = edm_coefficients(torch.tensor(s), sd)
    assert float(c_out) == pytest.approx(s * sd / math.hypot(s, sd))
    assert float(c_skip) == pytest.approx(sd**2 / (s**2 + sd**2)) and float(c_in) == pytest.approx(
        1 / math.hypot(s, sd)
    )


def test_curriculum_starts_noisy_and_advances_on_plateau():
    c = Curriculum(clusters=4, patience=2)
    u = c.draw(1000, torch.Generator().manual_seed(0))
    assert u.min() >= 0.75  # stage 1: the noisiest quarter of noise levels
    assert not c.update(1.0) and not c.update(1.1)
    assert c.update(1.2)  # the second validation without improvement advances the stage
    assert c.stage == 2 and c.low_quantile == 0.5
    for _ in range(10):
        c.update(5.0)
    assert c.stage == 4 and c.low_quantile == 0.0
    assert Curriculum.from_json(c.to_json()) == c


def test_ema_follows_the_weights_with_the_configured_half_life():
    model = DiffusionModel(DiffusionSpec("unet", 1, 8, 8))
    before = [p.clone() for p in model.ema.parameters()]
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.add_(1.0)
    decay = ema_decay(step=1000, halflife_steps=10)
    assert decay == pytest.approx(0.5 ** (1 / 10))
    model.update_ema(decay)
    for e, b in zip(model.ema.parameters(), before, strict=True):
        torch.testing.assert_close(e, b + (1 - decay))


def _steps(model, opt, sched, n, start):
    spec = model.spec
    loss_fn = DenoisingLoss(model.denoiser, spec)
    g = torch.Generator().manual_seed(start)
    data = torch.Generator().manual_seed(100 + start)
    for k in range(n):
        x0 = torch.randn(16, 1, 8, 8, generator=data).clamp(-1, 1)
        diffusion_train_step(loss_fn, model, x0, None, opt, sched, OptimConfig(), Curriculum(), g, start + k, 5.0)


def test_resume_restores_weights_ema_and_optimizer_exactly(tmp_path):
    torch.manual_seed(0)
    spec = DiffusionSpec("unet", 1, 8, 8, width_factor=8)
    a = DiffusionModel(spec)
    opt_a, sched_a = make_optimizer(a.denoiser, OptimConfig(total_steps=20))
    _steps(a, opt_a, sched_a, 3, 1)
    save_training_state(tmp_path / "state", a, opt_a, sched_a, {"step": 3})
    b = DiffusionModel(spec)
    opt_b, sched_b = make_optimizer(b.denoiser, OptimConfig(total_steps=20))
    assert load_training_state(tmp_path / "state", b, opt_b, sched_b) == {"step": 3}
    _steps(a, opt_a, sched_a, 2, 4)
    _steps(b, opt_b, sched_b, 2, 4)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name  # denoiser and EMA, bit for bit


def test_checkpoint_round_trip_and_seeded_sampling(tmp_path):
    spec = DiffusionSpec("spherical", 2, 8, 16, cond_channels=2, width_factor=8, num_layers=1, sigma_data=1.0)
    model = DiffusionModel(spec)
    save_diffusion(tmp_path / "ckpt", model, {"seed": 3})
    loaded, meta = load_diffusion(tmp_path / "ckpt")
    assert meta["seed"] == 3 and meta["model"]["network"] == "spherical"
    cond = torch.randn(3, 2, 8, 16)
    one = generate(loaded, (2, 8, 16), [5, 6, 7], nfe=4, cond=cond)
    again = generate(model.eval(), (2, 8, 16), [6], nfe=4, cond=cond[1:2])
    torch.testing.assert_close(one.samples[1:2], again.samples, rtol=1e-5, atol=1e-5)
    assert one.hallucination.shape == (3,) and one.nfe == 4
