"""Distances between two sample sets (no pretrained networks): sliced Wasserstein, MMD, energy.

``x``: (n, d) and ``y``: (m, d) float tensors (flatten images or fields first). Units: those of
the data for sliced Wasserstein and the square root of energy distance; MMD^2 is unitless.
"""

from __future__ import annotations

import torch


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, n_projections: int = 128, seed: int = 0) -> float:
    """Sliced 2-Wasserstein distance: RMS over random unit directions of the 1-D W2 distance.

    The 1-D W2 between projections is computed by matching quantiles (sorting); sets of
    different sizes are compared on a common grid of quantile levels.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need (n, d) and (m, d) samples, got {tuple(x.shape)} and {tuple(y.shape)}")
    g = torch.Generator().manual_seed(seed)
    dirs = torch.randn(x.shape[1], n_projections, generator=g, dtype=torch.float64)
    dirs /= dirs.norm(dim=0, keepdim=True)
    px = torch.sort(x.double() @ dirs, dim=0).values
    py = torch.sort(y.double() @ dirs, dim=0).values
    if len(px) != len(py):
        n = max(len(px), len(py))
        q = (torch.arange(n, dtype=torch.float64) + 0.5) / n
        px = torch.quantile(px, q, dim=0)
        py = torch.quantile(py, q, dim=0)
    return float(((px - py) ** 2).mean().sqrt())


def mmd_rbf(x: torch.Tensor, y: torch.Tensor, bandwidth: float | None = None) -> float:
    """Unbiased MMD^2 with a Gaussian kernel exp(-|a-b|^2 / (2 h^2)); h: median pairwise distance."""
    x, y = x.double(), y.double()
    dxx, dyy, dxy = torch.cdist(x, x) ** 2, torch.cdist(y, y) ** 2, torch.cdist(x, y) ** 2
    h2 = bandwidth**2 if bandwidth else float(torch.median(dxy)) / 2 or 1.0

    def off_diagonal_mean(d: torch.Tensor) -> torch.Tensor:
        k = torch.exp(-d / (2 * h2))
        n = len(d)
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    return float(off_diagonal_mean(dxx) + off_diagonal_mean(dyy) - 2 * torch.exp(-dxy / (2 * h2)).mean())


def energy_distance(x: torch.Tensor, y: torch.Tensor) -> float:
    """2 E|X - Y| - E|X - X'| - E|Y - Y'| (Euclidean norms; within-set means over distinct pairs)."""
    x, y = x.double(), y.double()

    def within(a: torch.Tensor) -> torch.Tensor:
        n = len(a)
        return torch.cdist(a, a).sum() / (n * (n - 1))

    return float(2 * torch.cdist(x, y).mean() - within(x) - within(y))


__all__ = ["energy_distance", "mmd_rbf", "sliced_wasserstein"]
