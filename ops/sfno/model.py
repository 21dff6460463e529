"""The SFNO stepper: torch-harmonics' Spherical Fourier Neural Operator as ``x_t -> x_{t+dt}``.

Bonev et al. 2023, "Spherical Fourier Neural Operators: Learning Stable Dynamics on the
Sphere" (ICML). The network works on standardised fields ``z = (x - mean) / std`` per channel;
with ``residual`` it predicts the increment, ``z_{t+dt} = z_t + f(z_t)``, which is what makes a
6-hourly stepper easy to train (HENS/makani use the same trick). ``forward`` takes and returns
physical units; ``step_normalized`` is what the training loop differentiates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from swarmcast.kernels.harmonics import SphericalFourierNeuralOperator
from swarmcast.ops.data.normalization import Normalization

INTERNAL_GRIDS = ("equiangular", "legendre-gauss")


@dataclass(frozen=True)
class SFNOConfig:
    """Hyper-parameters of one SFNO stepper (stored in ``checkpoint.json``)."""

    channels: tuple[str, ...]
    """Channels in and out, in this order."""
    nlat: int
    """Latitudes of the data grid (equiangular, 90 -> -90)."""
    nlon: int
    """Longitudes of the data grid."""
    embed_dim: int = 32
    """Width of the SFNO blocks."""
    num_layers: int = 4
    """Number of SFNO blocks."""
    scale_factor: int = 1
    """Downsampling of the internal grid (HENS used 2 at 0.25 degrees)."""
    grid_internal: str = "legendre-gauss"
    """Quadrature grid used inside the network."""
    residual: bool = True
    """Predict the increment of the standardised state rather than the state."""
    mlp_ratio: float = 2.0
    """Hidden width of the per-block MLP relative to ``embed_dim``."""
    extra: dict = field(default_factory=dict)
    """Further keyword arguments for torch-harmonics' model (advanced)."""

    def __post_init__(self) -> None:
        problems = []
        if not self.channels:
            problems.append("channels must not be empty")
        if self.nlat < 4 or self.nlon < 8 or self.nlon % 2:
            problems.append(f"grid {self.nlat}x{self.nlon} is too small or has odd nlon")
        if self.scale_factor < 1 or self.nlat % self.scale_factor or self.nlon % self.scale_factor:
            problems.append(f"scale_factor {self.scale_factor} must divide the grid {self.nlat}x{self.nlon}")
        elif self.nlat // self.scale_factor < 4:
            problems.append(f"scale_factor {self.scale_factor} leaves fewer than 4 internal latitudes")
        if self.grid_internal not in INTERNAL_GRIDS:
            problems.append(f"grid_internal must be one of {INTERNAL_GRIDS}, got {self.grid_internal!r}")
        if self.embed_dim < 1 or self.num_layers < 1:
            problems.append("embed_dim and num_layers must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))

    def to_json(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @staticmethod
    def from_json(d: dict) -> SFNOConfig:
        return SFNOConfig(**{**d, "channels": tuple(d["channels"])})


class SFNOStepper(nn.Module):
    """Advances (batch, channels, nlat, nlon) states by one model step.

    ``mean``/``std`` (channels,) are the data's normalisation statistics, kept as buffers so
    they travel with the weights.
    """

    def __init__(
        self,
        config: SFNOConfig,
        mean: Sequence[float],
        std: Sequence[float],
        increment_scale: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        n = len(config.channels)
        if len(mean) != n or len(std) != n:
            raise ValueError(f"need {n} normalisation means and stds, got {len(mean)} and {len(std)}")
        scale = [1.0] * n if increment_scale is None else list(increment_scale)
        if len(scale) != n:
            raise ValueError(f"need {n} increment scales, got {len(scale)}")
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).reshape(n, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).reshape(n, 1, 1))
        # Residual increments in units of each channel's typical one-step change (tendency
        # std / std), so the network's outputs are O(1) for every channel.
        self.register_buffer("increment_scale", torch.as_tensor(scale, dtype=torch.float32).reshape(n, 1, 1))
        self.net = SphericalFourierNeuralOperator(
            img_size=(config.nlat, config.nlon),
            grid="equiangular",
            grid_internal=config.grid_internal,
            scale_factor=config.scale_factor,
            in_chans=n,
            out_chans=n,
            embed_dim=config.embed_dim,
            num_layers=config.num_layers,
            mlp_ratio=config.mlp_ratio,
            **config.extra,
        )

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.std + self.mean

    def step_normalized(self, z: torch.Tensor) -> torch.Tensor:
        """One step on standardised states (batch, channels, nlat, nlon)."""
        return self.combine(z, self.net(z))

    def combine(self, z: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """The next standardised state from the current one and the network output."""
        return z + out * self.increment_scale if self.config.residual else out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """One step on physical states (batch, channels, nlat, nlon)."""
        return self.denormalize(self.step_normalized(self.normalize(x)))

    def rollout_normalized(self, z: torch.Tensor, steps: int) -> torch.Tensor:
        """Autoregressive states after 1..steps steps, (steps, batch, channels, nlat, nlon)."""
        out = []
        for _ in range(steps):
            z = self.step_normalized(z)
            out.append(z)
        return torch.stack(out)


def increment_scale(normalization: Normalization, channels: Sequence[str]) -> list[float]:
    """Per-channel tendency std / std: the typical one-step change in standardised units."""
    return [normalization.channels[c].tendency_std / normalization.channels[c].std for c in channels]
