"""Losses and errors on the sphere, weighted by the grid's quadrature.

Fields are (..., channels, nlat, nlon); ``lat_weights`` (nlat,) has mean 1 (see
``swarmcast.kernels.sphere.quadrature_weights``), so a weighted mean over (lat, lon) is an
area mean and weights never need to be computed from cos(lat) by hand.
"""

from __future__ import annotations

import torch


def area_weighted_mse(pred: torch.Tensor, target: torch.Tensor, lat_weights: torch.Tensor) -> torch.Tensor:
    """Scalar: area-mean squared error, averaged over every leading dim and channel."""
    w = lat_weights.to(device=pred.device, dtype=torch.float32).reshape(-1, 1)
    err = (pred.float() - target.float()) ** 2
    return (err * w).mean()


def area_weighted_sse_per_channel(pred: torch.Tensor, target: torch.Tensor, lat_weights: torch.Tensor) -> torch.Tensor:
    """(channels,) sums over samples of the per-sample area-mean squared error.

    ``pred``/``target``: (n, channels, nlat, nlon). Divide by n and take the square root for
    the usual (per-sample MSE, then mean, then root) RMSE; sums merge across batches and ranks.
    """
    w = lat_weights.to(device=pred.device, dtype=torch.float64).reshape(-1, 1)
    err = (pred.double() - target.double()) ** 2
    return (err * w).mean(dim=(-2, -1)).sum(dim=0)
