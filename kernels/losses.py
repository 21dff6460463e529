"""Losses and errors on the sphere, weighted by the grid's quadrature.

Fields are (..., channels, nlat, nlon); ``lat_weights`` (nlat,) has mean 1 (see
``swarmcast.kernels.sphere.quadrature_weights``), so a weighted mean over (lat, lon) is an
area mean and weights never need to be computed from cos(lat) by hand.
"""

from __future__ import annotations

import torch

from swarmcast.kernels.spectra import angular_power_spectrum


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


def spectral_error_ratio(
    pred: torch.Tensor, target: torch.Tensor, previous: torch.Tensor, grid: str = "equiangular"
) -> torch.Tensor:
    """Scalar: the step error's angular power relative to the true step's, per channel and degree.

    ``pred``/``target``/``previous``: (batch, channels, nlat, nlon), the predicted and true
    next states and the true current one. With E_l and T_l the batch-mean power spectra of
    ``pred - target`` and of ``target - previous``, returns the mean over channels and degrees
    l >= 1 of E_l / (T_l + 1e-4 max_l T_l): 0 for a perfect step and 1 for persistence (at every
    degree where the data's tendency is above the floor). An area-weighted MSE is dominated by
    the few large degrees that hold the power, so grid-scale noise in the predicted step costs it
    almost nothing; this ratio weighs each degree by the data's own tendency there, and so
    penalises a model that adds small-scale power the data does not have. Degree 0 (the global
    mean, often conserved: zero tendency) is left to the MSE; the floor keeps degrees with
    almost no tendency from dominating.
    """
    err = angular_power_spectrum(pred.float() - target.float(), grid, dtype=torch.float32).mean(dim=0)[..., 1:]
    true = angular_power_spectrum(target.float() - previous.float(), grid, dtype=torch.float32).mean(dim=0)[..., 1:]
    floor = 1e-4 * true.amax(dim=-1, keepdim=True)
    return (err / (true + floor)).mean()
