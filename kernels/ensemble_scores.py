"""Pointwise ensemble scores (numpy, with torch twins where a GPU helps).

Conventions: ``ens`` holds the members along ``axis`` (default 0) and ``obs`` has the shape of
``ens`` without that axis; results have the shape of ``obs`` unless stated. Units are those of
the data (CRPS, errors) or its square (variances). Formulas follow WeatherBench2 (Rasp et al.
2024) and the papers named with each:

* fair CRPS = mean_m |x_m - y| - 1/(2 M (M-1)) sum_{i,j} |x_i - x_j|. The pair sum is computed
  in O(M log M) from the sorted members: sum_{i,j} |x_i - x_j| = 2 sum_i (2i - M - 1) x_(i)
  (1-based ranks), so no M x M array is ever formed. With one member it is the absolute error.
* spread-skill ratio with the finite-ensemble correction (Fortin et al. 2014):
  SSR = sqrt((M + 1) / M) * sqrt(mean variance) / sqrt(mean squared error of the ensemble mean).
* rank of the truth = #{members below it}, ties broken uniformly at random, counted with
  ``bincount``: no one-hot (M + 1) array.
* outliers: truth strictly outside [min, max] of the members; a consistent ensemble has rate
  2 / (M + 1) (Siegert et al. 2012).
"""

from __future__ import annotations

import math

import numpy as np
import torch


def _members_last(ens: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(np.asarray(ens), axis, -1)


def _check(x: np.ndarray, obs: np.ndarray) -> np.ndarray:
    y = np.asarray(obs)
    if x.shape[:-1] != y.shape:
        raise ValueError(f"obs shape {y.shape} does not match the ensemble without its member axis {x.shape[:-1]}")
    if x.shape[-1] < 1:
        raise ValueError("the ensemble has no members")
    return y


def fair_crps(ens: np.ndarray, obs: np.ndarray, axis: int = 0, *, fair: bool = True) -> np.ndarray:
    """Fair (unbiased) CRPS per point, O(M log M) by sorting; MAE when M = 1.

    ``fair=False`` gives the empirical-CDF CRPS (pair sum over M^2 instead of M(M-1)), which
    is biased high by spread/(2M) and so improves with ensemble size even for exchangeable
    members: the form for skill-versus-ensemble-size curves.
    """
    x = _members_last(ens, axis)
    y = _check(x, obs)
    m = x.shape[-1]
    skill = np.abs(x - y[..., None]).mean(axis=-1)
    if m == 1:
        return skill
    ranks = np.arange(1, m + 1, dtype=x.dtype)
    # 0.5 * spread = 0.5 * 2/(M(M-1)) * sum_i (2i - M - 1) x_(i)
    half_spread_weights = (2 * ranks - m - 1) / (m * (m - 1) if fair else m * m)
    return skill - np.sort(x, axis=-1) @ half_spread_weights


def fair_crps_torch(ens: torch.Tensor, obs: torch.Tensor, dim: int = 0) -> torch.Tensor:
    """``fair_crps`` for tensors on any device (the GPU path of ``bench crps``)."""
    x = ens.movedim(dim, -1)
    if x.shape[:-1] != obs.shape:
        raise ValueError(f"obs shape {tuple(obs.shape)} does not match the ensemble {tuple(x.shape[:-1])}")
    m = x.shape[-1]
    skill = (x - obs[..., None]).abs().mean(dim=-1)
    if m == 1:
        return skill
    ranks = torch.arange(1, m + 1, dtype=x.dtype, device=x.device)
    weights = (2 * ranks - m - 1) / (m * (m - 1))
    return skill - torch.sort(x, dim=-1).values @ weights


def ensemble_mean_variance(ens: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Ensemble mean and unbiased (ddof=1) variance per point; variance is 0 for one member."""
    x = np.asarray(ens)
    mean = x.mean(axis=axis)
    if x.shape[axis] < 2:
        return mean, np.zeros_like(mean)
    return mean, x.var(axis=axis, ddof=1)


def spread_skill_ratio(mean_variance: np.ndarray, mean_squared_error: np.ndarray, members: int) -> np.ndarray:
    """Finite-M corrected spread-skill ratio from already averaged variance and ensemble-mean MSE.

    Average the variance and the MSE over space and time *before* calling (ratio of means, as
    WeatherBench2 and Fortin et al. do); ~1 for a reliable ensemble of any size. NaN where the
    MSE is at float32 rounding level of the variance (centred +/- pairs at lead 0).
    """
    if members < 2:
        raise ValueError("the spread-skill ratio needs at least 2 members")
    var, mse = np.asarray(mean_variance, dtype=np.float64), np.asarray(mean_squared_error, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt((members + 1) / members) * np.sqrt(var) / np.sqrt(mse)
    # Undefined where the ensemble mean is exact up to float32 rounding (lead 0 of centred
    # +/- pairs): a ratio of spread to rounding noise would read as 10^7.
    return np.where(mse > 1e-12 * var, ratio, np.nan)


def truth_rank(ens: np.ndarray, obs: np.ndarray, axis: int = 0, *, rng: np.random.Generator) -> np.ndarray:
    """Rank of the truth among the members, 0..M (int64), ties broken uniformly at random."""
    x = _members_last(ens, axis)
    y = _check(x, obs)[..., None]
    below = (x < y).sum(axis=-1)
    ties = (x == y).sum(axis=-1)
    if not ties.any():
        return below.astype(np.int64)
    return (below + np.floor(rng.random(below.shape) * (ties + 1))).astype(np.int64)


def rank_histogram(ranks: np.ndarray, members: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Counts (or summed ``weights``) of each rank 0..M, shape (M + 1,), by ``bincount``."""
    r = np.asarray(ranks).ravel()
    if r.size and (r.min() < 0 or r.max() > members):
        raise ValueError(f"ranks must lie in 0..{members}")
    w = None if weights is None else np.broadcast_to(weights, np.shape(ranks)).ravel()
    return np.bincount(r, weights=w, minlength=members + 1).astype(np.float64)


def outside_range(ens: np.ndarray, obs: np.ndarray, axis: int = 0) -> np.ndarray:
    """True where the truth lies strictly outside [min, max] of the members (bool)."""
    x = np.asarray(ens)
    y = np.asarray(obs)
    return (y < x.min(axis=axis)) | (y > x.max(axis=axis))


def expected_outlier_rate(members: int) -> float:
    """Outlier rate of a consistent M-member ensemble: 2 / (M + 1)."""
    return 2.0 / (members + 1)


def gaussian_outlier_rate(ssr: float, members: int, nodes: int = 160) -> float:
    """Outlier rate of an M-member Gaussian ensemble whose spread-skill ratio (as scored here,
    with the sqrt((M + 1) / M) factor) is ``ssr``: what a given spread-skill ratio implies for
    the ensemble's tails and its rank histogram's end bins.

    Members x_i ~ N(0, s^2) and truth y ~ N(0, 1) about the same mean: the variance is s^2 and
    the ensemble mean's squared error 1 + s^2 / M, so ssr^2 = (M + 1) s^2 / (M + s^2) and
    s^2 = M ssr^2 / (M + 1 - ssr^2). Given y, each member lies below it with probability
    p = Phi(y / s), and the truth is outside the members' range when all or none do:
    rate = E_y[p^M + (1 - p)^M], by Gauss-Hermite quadrature. ``ssr`` = 1 gives 2 / (M + 1);
    the rate rises as ``ssr`` falls. Needs 0 < ssr^2 < M + 1 (the largest ratio M members can
    score against any truth).
    """
    if members < 2 or not 0 < ssr**2 < members + 1:
        raise ValueError(f"need members >= 2 and 0 < ssr^2 < members + 1, got ssr={ssr}, members={members}")
    s = np.sqrt(members * ssr**2 / (members + 1 - ssr**2))
    x, w = np.polynomial.hermite.hermgauss(nodes)  # integral of f(x) exp(-x^2)
    y = np.sqrt(2.0) * x  # y ~ N(0, 1): E[g(y)] = sum w g(sqrt(2) x) / sqrt(pi)
    p = 0.5 * (1.0 + np.array([math.erf(v / (s * np.sqrt(2.0))) for v in y]))
    return float((w * (p**members + (1 - p) ** members)).sum() / np.sqrt(np.pi))


def best_member_squared_error(ens: np.ndarray, obs: np.ndarray, axis: int = 0) -> np.ndarray:
    """Squared error of the member closest to the truth at each point (HENS' "gain")."""
    x = _members_last(ens, axis)
    y = _check(x, obs)
    return np.min((x - y[..., None]) ** 2, axis=-1)


def energy_score(ens: np.ndarray, obs: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Fair energy score of one multivariate forecast.

    ``ens``: (M, D) members as vectors, ``obs``: (D,), ``weights``: (D,) non-negative norm
    weights (e.g. area weights), so ||v|| = sqrt(sum_d w_d v_d^2). Skill - 0.5 x fair spread
    over all pairs, via the Gram matrix: O(M^2 D) flops, O(M^2) memory.
    """
    x = np.asarray(ens, dtype=np.float64)
    y = np.asarray(obs, dtype=np.float64)
    if x.ndim != 2 or y.shape != x.shape[1:]:
        raise ValueError(f"energy_score wants ens (M, D) and obs (D,), got {x.shape} and {y.shape}")
    w = np.ones(x.shape[1]) if weights is None else np.asarray(weights, dtype=np.float64)
    skill = np.sqrt((((x - y) ** 2) * w).sum(axis=1)).mean()
    m = x.shape[0]
    if m == 1:
        return float(skill)
    xw = x * np.sqrt(w)
    sq = (xw * xw).sum(axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * xw @ xw.T, 0.0)
    np.fill_diagonal(d2, 0.0)  # exact zeros; the Gram form leaves ~1e-16 whose sqrt is not small
    spread = np.sqrt(d2).sum() / (m * (m - 1))
    return float(skill - 0.5 * spread)


def extreme_forecast_index(clim_quantiles: np.ndarray, ens: np.ndarray, axis: int = 0) -> np.ndarray:
    """Extreme Forecast Index (Lalaurette 2003) against a model climate, in [-1, 1].

    EFI = 2/pi * integral_0^1 (p - F_f(p)) / sqrt(p (1 - p)) dp, where F_f(p) is the fraction of
    members at or below the climate's p-quantile. ``clim_quantiles``: (K, ...) sorted climate
    quantiles at p = linspace(0, 1, K); ``ens``: members along ``axis``, the rest like
    ``clim_quantiles[0]``. F_f is linear between the K points, and each segment is integrated
    exactly with p = sin^2(theta): int dp/sqrt(p(1-p)) = 2 theta and
    int p dp/sqrt(p(1-p)) = theta - sqrt(p(1-p)).
    """
    q = np.asarray(clim_quantiles, dtype=np.float64)
    x = np.sort(_members_last(ens, axis), axis=-1)
    k = q.shape[0]
    if k < 2 or q.shape[1:] != x.shape[:-1]:
        raise ValueError(f"clim_quantiles (K>=2, ...) {q.shape} does not match the ensemble {x.shape[:-1]}")
    if np.any(np.diff(q, axis=0) < 0):
        raise ValueError("clim_quantiles must be sorted along their first axis")
    m = x.shape[-1]
    frac = np.stack([(x <= qk[..., None]).sum(axis=-1) / m for qk in q])  # F_f at each p_k, (K, ...)
    p = np.linspace(0.0, 1.0, k)
    theta = np.arcsin(np.sqrt(p))
    i0 = 2 * np.diff(theta)
    i1 = np.diff(theta - np.sqrt(p * (1 - p)))
    slope = np.diff(frac, axis=0) / np.diff(p).reshape(-1, *([1] * (frac.ndim - 1)))
    shape = (-1, *([1] * (frac.ndim - 1)))
    # on segment j: p - F(p) = (1 - s) p + (s p_j - F_j)
    seg = (1 - slope) * i1.reshape(shape) + (slope * p[:-1].reshape(shape) - frac[:-1]) * i0.reshape(shape)
    return (2 / np.pi) * seg.sum(axis=0)


__all__ = [
    "best_member_squared_error",
    "energy_score",
    "ensemble_mean_variance",
    "expected_outlier_rate",
    "extreme_forecast_index",
    "fair_crps",
    "fair_crps_torch",
    "gaussian_outlier_rate",
    "outside_range",
    "rank_histogram",
    "spread_skill_ratio",
    "truth_rank",
]
