"""Denoiser networks F(x_in, c_noise, cond) for EDM preconditioning.

* ``UNet``: a compact two-level U-Net for small images (digits, patches): 3x3 convolutions,
  GroupNorm, SiLU, the noise embedding added to every block, one down/up-sampling with a skip.
* ``SphericalDenoiser``: torch-harmonics' SFNO trunk for lat-lon fields. The noise level enters
  as an extra constant input channel and the conditioning state (e.g. x_t for a generative
  forecaster p(x_{t+dt} | x_t)) as extra channels, so spectral convolutions see everything.

Shapes: x_in (B, C, H, W), c_noise (B,), cond (B, C_cond, H, W) or None -> (B, C, H, W).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from swarmcast.kernels.harmonics import SphericalFourierNeuralOperator


def noise_embedding(c_noise: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of the preconditioned noise level, (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(1000.0) * torch.arange(half, device=c_noise.device) / max(half - 1, 1))
    angles = c_noise.float()[:, None] * 100.0 * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class _Block(nn.Module):
    def __init__(self, c_in: int, c_out: int, emb: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.norm1 = nn.GroupNorm(min(8, c_out), c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.emb = nn.Linear(emb, c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = nn.functional.silu(self.norm1(self.conv1(x)))
        h = h + self.emb(e)[:, :, None, None]
        h = nn.functional.silu(self.norm2(self.conv2(h)))
        return h + self.skip(x)


class UNet(nn.Module):
    """Two-level U-Net; H and W must be even."""

    def __init__(self, channels: int, cond_channels: int = 0, width: int = 32, emb: int = 64) -> None:
        super().__init__()
        self.emb = nn.Sequential(nn.Linear(emb, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.emb_dim = emb
        self.inp = nn.Conv2d(channels + cond_channels, width, 3, padding=1)
        self.down1 = _Block(width, width, emb)
        self.down2 = _Block(width, 2 * width, emb)
        self.mid = _Block(2 * width, 2 * width, emb)
        self.up2 = _Block(4 * width, width, emb)
        self.up1 = _Block(2 * width, width, emb)
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)  # start as D = c_skip x: a sensible denoiser at step 0
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        e = self.emb(noise_embedding(c_noise, self.emb_dim))
        h = self.inp(x if cond is None else torch.cat([x, cond], dim=1))
        h1 = self.down1(h, e)
        h2 = self.down2(nn.functional.avg_pool2d(h1, 2), e)
        m = self.mid(h2, e)
        u2 = self.up2(torch.cat([m, h2], dim=1), e)
        u1 = self.up1(torch.cat([nn.functional.interpolate(u2, scale_factor=2.0), h1], dim=1), e)
        return self.out(u1)


class SphericalDenoiser(nn.Module):
    """SFNO trunk on the equiangular grid with the noise level as an input channel."""

    def __init__(
        self, channels: int, cond_channels: int, nlat: int, nlon: int, embed_dim: int = 32, num_layers: int = 4
    ) -> None:
        super().__init__()
        self.net = SphericalFourierNeuralOperator(
            img_size=(nlat, nlon),
            grid="equiangular",
            grid_internal="legendre-gauss",
            in_chans=channels + cond_channels + 1,
            out_chans=channels,
            embed_dim=embed_dim,
            num_layers=num_layers,
        )

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None) -> torch.Tensor:
        level = c_noise.to(x.dtype)[:, None, None, None].expand(-1, 1, *x.shape[-2:])
        parts = [x, level] if cond is None else [x, cond, level]
        return self.net(torch.cat(parts, dim=1))
