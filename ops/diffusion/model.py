"""The diffusion model: an EDM-preconditioned denoiser, its EMA twin, objectives and curriculum.

``DiffusionSpec`` is everything needed to rebuild a model (stored in ``checkpoint.json``).
``DiffusionModel`` holds the trained denoiser and an exponential moving average of it as two
submodules, so one ``state_dict`` (and so one safetensors file and the shared training-state
code of ``swarmcast.ops.checkpoint``) carries both: resume restores the EMA exactly.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from swarmcast.kernels.diffusion import PREDICTIONS, NoisePath, edm_coefficients, loss_weight
from swarmcast.ops.diffusion.networks import SphericalDenoiser, UNet

NETWORKS = ("unet", "spherical")


@dataclass(frozen=True)
class DiffusionSpec:
    """Hyper-parameters of a diffusion model (stored in the checkpoint)."""

    network: str
    """"unet" (images) or "spherical" (lat-lon fields)."""
    channels: int
    """Channels generated."""
    height: int
    width: int
    cond_channels: int = 0
    """Channels of the conditioning state (0: unconditional)."""
    width_factor: int = 32
    """U-Net width or SFNO embed_dim."""
    num_layers: int = 4
    """SFNO blocks (spherical only)."""
    sigma_data: float = 0.5
    """Data standard deviation for preconditioning (0.5 for images in [-1, 1], 1 for standardised fields)."""
    path: dict = field(default_factory=lambda: {"kind": "edm"})
    """``kernels.diffusion.NoisePath`` fields."""
    prediction: str = "edm"
    """Objective: "edm", "denoiser", "noise" or "velocity" (a weighting of ||D - x0||^2)."""
    p_mean: float = -1.2
    """EDM path: mean of ln s in training."""
    p_std: float = 1.2
    """EDM path: std of ln s in training."""

    def __post_init__(self) -> None:
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}")
        if self.prediction not in PREDICTIONS:
            raise ValueError(f"prediction must be one of {PREDICTIONS}, got {self.prediction!r}")
        self.noise_path()  # validates the path

    def noise_path(self) -> NoisePath:
        return NoisePath(**self.path)

    def to_json(self) -> dict:
        return asdict(self)


class Denoiser(nn.Module):
    """D(x; s, cond) = c_skip x + c_out F(c_in x, c_noise, cond) in the variance-exploding frame."""

    def __init__(self, spec: DiffusionSpec) -> None:
        super().__init__()
        self.sigma_data = spec.sigma_data
        if spec.network == "unet":
            self.net: nn.Module = UNet(spec.channels, spec.cond_channels, spec.width_factor)
        else:
            self.net = SphericalDenoiser(
                spec.channels, spec.cond_channels, spec.height, spec.width, spec.width_factor, spec.num_layers
            )

    def forward(self, x: torch.Tensor, s: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        s = torch.as_tensor(s, dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = (c.reshape(-1, 1, 1, 1) for c in edm_coefficients(s, self.sigma_data))
        return c_skip * x + c_out * self.net(c_in * x, c_noise.reshape(-1), cond)


class DiffusionModel(nn.Module):
    """The trained denoiser plus its EMA; ``ema`` is what sampling uses."""

    def __init__(self, spec: DiffusionSpec) -> None:
        super().__init__()
        self.spec = spec
        self.denoiser = Denoiser(spec)
        self.ema = copy.deepcopy(self.denoiser).requires_grad_(False)

    @torch.no_grad()
    def update_ema(self, decay: float) -> None:
        """ema <- decay * ema + (1 - decay) * denoiser (buffers copied)."""
        for e, p in zip(self.ema.parameters(), self.denoiser.parameters(), strict=True):
            e.lerp_(p.detach(), 1 - decay)
        for e, b in zip(self.ema.buffers(), self.denoiser.buffers(), strict=True):
            e.copy_(b)


def ema_decay(step: int, halflife_steps: float) -> float:
    """Per-step EMA decay with a half-life ramped up as min(halflife, step / 2) (EDM-style warm-up)."""
    half = min(halflife_steps, max(step, 1) * 0.5)
    return 0.5 ** (1.0 / half)


class DenoisingLoss(nn.Module):
    """Per-sample weighted denoising loss of ``spec``'s objective; ``forward(x0, cond, u)``.

    ``u`` (B,) in [0, 1] picks each sample's noise level through the objective's level
    distribution (its inverse CDF), so a curriculum can restrict ``u`` to easy (high-noise)
    quantiles. Returns the mean loss. DDP wraps this module (its only submodule is the
    denoiser), so gradients are averaged across workers.
    """

    def __init__(self, denoiser: Denoiser, spec: DiffusionSpec) -> None:
        super().__init__()
        self.denoiser, self.spec, self.path = denoiser, spec, spec.noise_path()
        self.t_lo, self.t_hi = self.path.t_range()

    def levels(self, u: torch.Tensor) -> torch.Tensor:
        """Path time t for quantile u of the training noise distribution (u -> 1: noisiest)."""
        if self.spec.prediction == "edm" and self.path.kind == "edm":
            normal = torch.distributions.Normal(0.0, 1.0)
            s = torch.exp(self.spec.p_mean + self.spec.p_std * normal.icdf(u.clamp(1e-6, 1 - 1e-6)))
            s = s.clamp(self.path.sigma_min, self.path.sigma_max)
            return self.path.t_of_s(s.double()).to(u.dtype)
        return self.t_lo + u * (self.t_hi - self.t_lo)

    def forward(self, x0: torch.Tensor, cond: torch.Tensor | None, u: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        t = self.levels(u).double()
        alpha, sigma, _, _ = self.path.coefficients(t)
        s = (sigma / alpha).to(x0.dtype)
        # the alpha-scaled state x_t / alpha = x0 + s z
        d = self.denoiser(x0 + s.reshape(-1, 1, 1, 1) * z, s, cond)
        w = loss_weight(self.spec.prediction, self.path, t, self.spec.sigma_data).to(x0.dtype)
        per_sample = ((d - x0) ** 2).flatten(1).mean(dim=1)
        return (w * per_sample).mean()


@dataclass
class Curriculum:
    """Easy-to-hard noise curriculum (Kim et al. 2024): train on the noisiest clusters first.

    Noise quantiles [0, 1] are split into ``clusters`` equal groups; stage n (1-based) trains on
    the n noisiest. The stage advances when the validation loss has not improved for
    ``patience`` evaluations; after the last stage training is ordinary (all levels).
    """

    clusters: int = 1
    patience: int = 2
    stage: int = 1
    best: float = float("inf")
    stale: int = 0

    @property
    def low_quantile(self) -> float:
        return 1.0 - min(self.stage, self.clusters) / self.clusters

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Noise quantiles u for a batch, restricted to the current stage's clusters."""
        lo = self.low_quantile
        return lo + (1 - lo) * torch.rand(n, generator=generator)

    def update(self, val_loss: float) -> bool:
        """Record a validation loss; returns True when the stage advanced."""
        if val_loss < self.best - 1e-12:
            self.best, self.stale = val_loss, 0
            return False
        self.stale += 1
        if self.stale >= self.patience and self.stage < self.clusters:
            self.stage, self.best, self.stale = self.stage + 1, float("inf"), 0
            return True
        return False

    def to_json(self) -> dict:
        return {**asdict(self), "best": None if self.best == float("inf") else self.best}

    @staticmethod
    def from_json(d: dict) -> Curriculum:
        return Curriculum(**{**d, "best": float("inf") if d["best"] is None else d["best"]})
